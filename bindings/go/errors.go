package bitcask

// #include <bitcask.h>
import "C"

import (
	"errors"
	"io/fs"
	"syscall"
)

// Code is a status code of the C API (bitcask_status_t). The numbers are part of
// the library's ABI and never change.
type Code int32

// The status codes of the C API. CodeNotFound is reported as ErrNotFound, never
// inside an *Error; CodeBufferTooSmall cannot reach Go callers, nor can
// CodeNoExpiry, which TTL reports as NoExpiry with a nil error.
const (
	CodeOK              Code = C.BITCASK_OK
	CodeNotFound        Code = C.BITCASK_NOT_FOUND
	CodeInvalidArgument Code = C.BITCASK_INVALID_ARGUMENT
	CodeBufferTooSmall  Code = C.BITCASK_BUFFER_TOO_SMALL
	CodePanic           Code = C.BITCASK_PANIC
	CodeIO              Code = C.BITCASK_IO
	CodeLocked          Code = C.BITCASK_LOCKED
	CodeReadOnly        Code = C.BITCASK_READ_ONLY
	CodeClosed          Code = C.BITCASK_CLOSED
	CodeWritesRefused   Code = C.BITCASK_WRITES_REFUSED
	CodeCorruption      Code = C.BITCASK_CORRUPTION
	CodeBadFormat       Code = C.BITCASK_BAD_FORMAT
	CodeEmptyKey        Code = C.BITCASK_EMPTY_KEY
	CodeKeyTooLarge     Code = C.BITCASK_KEY_TOO_LARGE
	CodeValueTooLarge   Code = C.BITCASK_VALUE_TOO_LARGE
	CodeBatchTooLarge   Code = C.BITCASK_BATCH_TOO_LARGE
	CodeInvalidOption   Code = C.BITCASK_INVALID_OPTION
	CodeOther           Code = C.BITCASK_OTHER
	CodeNoExpiry        Code = C.BITCASK_NO_EXPIRY
	CodeDBNotFound      Code = C.BITCASK_DB_NOT_FOUND
	CodeDBExists        Code = C.BITCASK_DB_EXISTS
)

// String returns the library's static description of the code.
func (c Code) String() string {
	return C.GoString(C.bitcask_strerror(C.int32_t(c)))
}

// Sentinel errors, one per kind of failure, for errors.Is. Every error the
// package returns is one of them or an *Error that matches exactly one, but
// for Open's report of a panic in a WithOpenProgress function.
var (
	// ErrNotFound is returned by Get and TTL for a key with no value (absent,
	// deleted or expired).
	ErrNotFound = errors.New("bitcask: not found")
	// ErrInvalidArgument: an argument the library refused (for example a path
	// containing a NUL byte), or an IterOptions with both bounds and a prefix.
	ErrInvalidArgument = errors.New("bitcask: invalid argument")
	// ErrPanic: the library panicked, which is a bug; reopening is the safe course.
	ErrPanic = errors.New("bitcask: internal panic")
	// ErrIO: an operating-system call failed; *Error.Errno holds errno, so
	// errors.Is(err, fs.ErrPermission) and errors.Is(err, syscall.ENOSPC) work too.
	ErrIO = errors.New("bitcask: I/O error")
	// ErrLocked: another handle, in this or another process, holds the
	// directory's writer lock.
	ErrLocked = errors.New("bitcask: database locked")
	// ErrReadOnly: a write on a database opened WithReadOnly.
	ErrReadOnly = errors.New("bitcask: database is read-only")
	// ErrClosed: the DB (or the iterator's or snapshot's DB) was closed, or
	// the Snapshot was.
	ErrClosed = errors.New("bitcask: database closed")
	// ErrWritesRefused: an earlier write or fsync failed, so the state on disk is
	// unknown; writes are refused until the database is reopened.
	ErrWritesRefused = errors.New("bitcask: writes refused")
	// ErrCorruption: a record or hint entry failed its checksum or framing; the
	// message names the file and offset. WithSalvage skips such records at open.
	ErrCorruption = errors.New("bitcask: corruption")
	// ErrBadFormat: a file that is not a libbitcask file of a version this build
	// can read.
	ErrBadFormat = errors.New("bitcask: bad format")
	// ErrEmptyKey: a write of an empty key.
	ErrEmptyKey = errors.New("bitcask: empty key")
	// ErrKeyTooLarge: a key longer than WithMaxKeySize.
	ErrKeyTooLarge = errors.New("bitcask: key too large")
	// ErrValueTooLarge: a value longer than WithMaxValueSize.
	ErrValueTooLarge = errors.New("bitcask: value too large")
	// ErrBatchTooLarge: a batch larger than the largest single write.
	ErrBatchTooLarge = errors.New("bitcask: batch too large")
	// ErrInvalidOption: an option value out of range, or a TTL that is not
	// positive or too long; the message names it.
	ErrInvalidOption = errors.New("bitcask: invalid option")
	// ErrDatabaseNotFound: Open found no database (no data file) in the
	// directory, or no directory, and WithCreateIfMissing(false) was given;
	// nothing was created. It also matches fs.ErrNotExist.
	ErrDatabaseNotFound = errors.New("bitcask: database not found")
	// ErrDatabaseExists: Open found a database (a data file) in the directory
	// and WithErrorIfExists(true) was given; the database was left untouched.
	// It also matches fs.ErrExist.
	ErrDatabaseExists = errors.New("bitcask: database exists")
	// ErrOther: an engine error this version of the C API has no code for.
	ErrOther = errors.New("bitcask: error")
)

var sentinels = map[Code]error{
	CodeNotFound:        ErrNotFound,
	CodeInvalidArgument: ErrInvalidArgument,
	CodePanic:           ErrPanic,
	CodeIO:              ErrIO,
	CodeLocked:          ErrLocked,
	CodeReadOnly:        ErrReadOnly,
	CodeClosed:          ErrClosed,
	CodeWritesRefused:   ErrWritesRefused,
	CodeCorruption:      ErrCorruption,
	CodeBadFormat:       ErrBadFormat,
	CodeEmptyKey:        ErrEmptyKey,
	CodeKeyTooLarge:     ErrKeyTooLarge,
	CodeValueTooLarge:   ErrValueTooLarge,
	CodeBatchTooLarge:   ErrBatchTooLarge,
	CodeInvalidOption:   ErrInvalidOption,
	CodeDBNotFound:      ErrDatabaseNotFound,
	CodeDBExists:        ErrDatabaseExists,
	CodeOther:           ErrOther,
}

// fsErrors are the io/fs errors that codes match besides their sentinel.
var fsErrors = map[Code]error{
	CodeDBNotFound: fs.ErrNotExist,
	CodeDBExists:   fs.ErrExist,
}

// Error is a failure with the library's detailed message. It matches its
// sentinel with errors.Is (errors.Is(err, bitcask.ErrCorruption)), and, when the
// operating system gave one, its errno as well.
type Error struct {
	// Code is the C status code; Sentinel maps it back to an Err* value.
	Code Code
	// Message is the library's description: the file and offset of a
	// corruption, the option name of an invalid option, the OS error of an I/O
	// failure.
	Message string
	// Errno is the OS error behind the failure, or 0.
	Errno syscall.Errno
}

// Error returns the message, prefixed like the sentinels.
func (e *Error) Error() string {
	if e.Message == "" {
		return "bitcask: " + e.Code.String()
	}
	return "bitcask: " + e.Message
}

// Sentinel returns the Err* value of the error's code (ErrOther for a code this
// package does not know).
func (e *Error) Sentinel() error {
	if s, ok := sentinels[e.Code]; ok {
		return s
	}
	return ErrOther
}

// Unwrap gives the sentinel and, when set, the errno, so that errors.Is matches
// both and errors.As can reach the syscall.Errno. ErrDatabaseNotFound and
// ErrDatabaseExists errors also give fs.ErrNotExist and fs.ErrExist.
func (e *Error) Unwrap() []error {
	errs := []error{e.Sentinel()}
	if fsErr, ok := fsErrors[e.Code]; ok {
		errs = append(errs, fsErr)
	}
	if e.Errno != 0 {
		errs = append(errs, e.Errno)
	}
	return errs
}

// statusError turns a failed status into an error. It must run on the OS thread
// of the failing call, before any other bitcask_ call there, because the message
// and errno live in thread-local storage of the library.
func statusError(s C.bitcask_status_t) error {
	code := Code(s)
	if code == CodeNotFound {
		return ErrNotFound
	}
	return &Error{
		Code:    code,
		Message: C.GoString(C.bitcask_last_error_message()),
		Errno:   syscall.Errno(C.bitcask_last_os_error()),
	}
}

// goError is an error raised on the Go side, shaped like the library's own.
func goError(code Code, msg string) error {
	return &Error{Code: code, Message: msg}
}

var errClosed = goError(CodeClosed, "database is closed")
