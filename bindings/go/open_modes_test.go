package bitcask

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// makeDB creates a database in dir holding k=v.
func makeDB(t *testing.T, dir string) {
	t.Helper()
	db, err := Open(dir)
	must(t, err)
	must(t, db.Put([]byte("k"), []byte("v")))
	must(t, db.Close())
}

// listing returns the names and sizes of dir's entries.
func listing(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	must(t, err)
	var out []string
	for _, e := range entries {
		fi, err := e.Info()
		must(t, err)
		out = append(out, fmt.Sprintf("%s:%d", e.Name(), fi.Size()))
	}
	return out
}

func wantCode(t *testing.T, err error, sentinel error, code Code, fsErr error) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("err = %v, want %v", err, sentinel)
	}
	if !errors.Is(err, fsErr) {
		t.Fatalf("err = %v does not match %v", err, fsErr)
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != code || e.Sentinel() != sentinel {
		t.Fatalf("err = %#v, want an *Error with %v", err, code)
	}
	for _, other := range sentinels {
		if other != sentinel && errors.Is(err, other) {
			t.Fatalf("%v also matches %v", err, other)
		}
	}
}

func TestMissingPathWithoutCreateIfMissingIsNotFoundAndCreatesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	_, err := Open(dir, WithCreateIfMissing(false))
	wantCode(t, err, ErrDatabaseNotFound, CodeDBNotFound, fs.ErrNotExist)
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat(%s) = %v, want it absent", dir, err)
	}
}

func TestEmptyDirectoryWithoutCreateIfMissingIsNotFoundAndStaysEmpty(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(dir, WithCreateIfMissing(false))
	wantCode(t, err, ErrDatabaseNotFound, CodeDBNotFound, fs.ErrNotExist)
	if names := listing(t, dir); len(names) != 0 {
		t.Fatalf("directory holds %v, want nothing", names)
	}
}

func TestExistingDatabaseOpensWithoutCreateIfMissing(t *testing.T) {
	dir := t.TempDir()
	makeDB(t, dir)
	db := open(t, dir, WithCreateIfMissing(false))
	checkModel(t, db, map[string]string{"k": "v"})
}

func TestErrorIfExistsOnExistingDatabaseIsExistsAndLeavesItIntact(t *testing.T) {
	dir := t.TempDir()
	makeDB(t, dir)
	before := listing(t, dir)
	_, err := Open(dir, WithErrorIfExists(true))
	wantCode(t, err, ErrDatabaseExists, CodeDBExists, fs.ErrExist)
	if after := listing(t, dir); !slices.Equal(before, after) {
		t.Fatalf("directory changed: %v, then %v", before, after)
	}
	// The failed open released its lock: a plain open works and reads.
	db := open(t, dir)
	checkModel(t, db, map[string]string{"k": "v"})
}

func TestErrorIfExistsOnFreshPathCreatesTheDatabase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	db, err := Open(dir, WithErrorIfExists(true))
	must(t, err)
	must(t, db.Put([]byte("k"), []byte("v")))
	must(t, db.Close())
	db = open(t, dir, WithCreateIfMissing(false))
	checkModel(t, db, map[string]string{"k": "v"})
}

func TestDefaultOpenModesCreateAndReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	makeDB(t, dir)
	db := open(t, dir, WithCreateIfMissing(true), WithErrorIfExists(false))
	checkModel(t, db, map[string]string{"k": "v"})
}
