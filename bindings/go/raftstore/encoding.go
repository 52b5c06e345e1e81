package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Keys. Every key of the store starts with a one-byte prefix naming its kind,
// so that the logs are one contiguous range of the ordered keydir:
//
//	'l' + 8-byte big-endian index    a log entry (9 bytes; big-endian so that
//	                                 key order is index order)
//	's' + the StableStore key        a StableStore value, stored as given
//	                                 (SetUint64: 8 bytes, big-endian)
const (
	prefixLog    = 'l'
	prefixStable = 's'
	logKeyLen    = 1 + 8
)

// logKey returns the key of the log entry at index.
func logKey(index uint64) [logKeyLen]byte {
	var k [logKeyLen]byte
	k[0] = prefixLog
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

// logKeysStart and logKeysEnd bound the log range: every log key k has
// logKeysStart <= k < logKeysEnd.
var (
	logKeysStart = []byte{prefixLog}
	logKeysEnd   = []byte{prefixLog + 1}
)

// logIndex returns the index a log key names.
func logIndex(key []byte) (uint64, error) {
	if len(key) != logKeyLen || key[0] != prefixLog {
		return 0, fmt.Errorf("raftstore: %x is not a log key", key)
	}
	return binary.BigEndian.Uint64(key[1:]), nil
}

func stableKey(k []byte) []byte {
	key := make([]byte, 0, 1+len(k))
	return append(append(key, prefixStable), k...)
}

// The value of a log entry, format 1. The index is not repeated: the key holds
// it. Integers are varints (encoding/binary's), so a typical entry costs 9 to
// 13 bytes beyond its Data and Extensions:
//
//	byte      format version (1)
//	uvarint   Term
//	byte      Type
//	uvarint   AppendedAt: 0 for the zero time, else its nanoseconds + 1,
//	varint    ... followed by its Unix seconds (absent for the zero time)
//	uvarint   len(Data) + 1, or 0 for a nil Data
//	bytes     Data
//	uvarint   len(Extensions) + 1, or 0 for nil Extensions
//	bytes     Extensions
//
// Nothing may follow. A decoded AppendedAt is in the local time zone (the
// instant is exact; a monotonic clock reading is not kept, as by any encoding).
const formatV1 = 1

// errCorruptLog is wrapped by the error of a log value that does not decode.
var errCorruptLog = errors.New("corrupt log entry")

// appendLog appends the encoding of l (all but its Index) to dst.
func appendLog(dst []byte, l *raft.Log) []byte {
	dst = append(dst, formatV1)
	dst = binary.AppendUvarint(dst, l.Term)
	dst = append(dst, byte(l.Type))
	if l.AppendedAt.IsZero() {
		dst = append(dst, 0)
	} else {
		dst = binary.AppendUvarint(dst, uint64(l.AppendedAt.Nanosecond())+1)
		dst = binary.AppendVarint(dst, l.AppendedAt.Unix())
	}
	dst = appendBytes(dst, l.Data)
	return appendBytes(dst, l.Extensions)
}

func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b))+1)
	return append(dst, b...)
}

// decodeLog fills every field of l but Index from buf. Data and Extensions
// point into buf (with their capacity capped at their length), which the
// caller must not reuse.
func decodeLog(buf []byte, l *raft.Log) error {
	d := decoder{buf: buf}
	if v := d.byte(); v != formatV1 && d.err == nil {
		return fmt.Errorf("%w: unknown format %d", errCorruptLog, v)
	}
	term := d.uvarint()
	typ := raft.LogType(d.byte())
	var at time.Time
	if tag := d.uvarint(); tag != 0 {
		nsec := tag - 1
		sec := d.varint()
		if nsec >= uint64(time.Second) && d.err == nil {
			d.err = fmt.Errorf("%w: nanoseconds %d out of range", errCorruptLog, nsec)
		}
		at = time.Unix(sec, int64(nsec))
	}
	data := d.bytes()
	ext := d.bytes()
	if d.err == nil && len(d.buf) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", errCorruptLog, len(d.buf))
	}
	if d.err != nil {
		return d.err
	}
	l.Term, l.Type, l.AppendedAt, l.Data, l.Extensions = term, typ, at, data, ext
	return nil
}

// decoder reads a value; after the first failure every read returns zero and
// err says why.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated %s", errCorruptLog, what)
	}
	d.buf = nil
}

func (d *decoder) byte() byte {
	if len(d.buf) < 1 {
		d.fail("byte")
		return 0
	}
	b := d.buf[0]
	d.buf = d.buf[1:]
	return b
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.fail("varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n == 0 || d.err != nil {
		return nil
	}
	n--
	if uint64(len(d.buf)) < n {
		d.fail("bytes")
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}
