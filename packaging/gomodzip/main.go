// Command gomodzip writes a module version into a Go module proxy tree (the
// layout GOPROXY=file:// and any static web server serve): <out>/<path>/@v/
// list, <v>.info, <v>.mod and <v>.zip. The zip is made by golang.org/x/mod/zip,
// the code the go command uses, so it follows the module zip rules; it is then
// checked as the go command would check a downloaded one, and its go.sum hash
// is printed.
//
//	gomodzip -module github.com/x/y -version v1.2.3 -dir ./staged -out ./goproxy -time 1700000000
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("gomodzip: ")
	path := flag.String("module", "", "module path")
	version := flag.String("version", "", "version, e.g. v0.1.0")
	dir := flag.String("dir", "", "directory holding exactly the module's files, go.mod at its root")
	out := flag.String("out", "", "root of the proxy tree")
	unix := flag.Int64("time", 0, "the version's time (.info), in seconds since the epoch")
	flag.Parse()
	if *path == "" || *version == "" || *dir == "" || *out == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	m := module.Version{Path: *path, Version: *version}
	if err := module.Check(m.Path, m.Version); err != nil {
		log.Fatal(err)
	}

	goMod, err := os.ReadFile(filepath.Join(*dir, "go.mod"))
	if err != nil {
		log.Fatal(err)
	}
	if got := modfile.ModulePath(goMod); got != m.Path {
		log.Fatalf("%s/go.mod declares module %q, not %q", *dir, got, m.Path)
	}

	// Files the rules leave out (submodules, vendor/, symlinks...) are an error
	// here, not silently dropped: the staged directory is meant to be exact.
	checked, err := modzip.CheckDir(*dir)
	if err == nil {
		err = checked.Err()
	}
	if err != nil {
		log.Fatalf("%s: %v", *dir, err)
	}

	escaped, err := module.EscapePath(m.Path)
	if err != nil {
		log.Fatal(err)
	}
	vdir := filepath.Join(*out, filepath.FromSlash(escaped), "@v")
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		log.Fatal(err)
	}
	base := filepath.Join(vdir, m.Version)

	var zipBuf bytes.Buffer
	if err := modzip.CreateFromDir(&zipBuf, m, *dir); err != nil {
		log.Fatal(err)
	}
	info, err := json.Marshal(struct {
		Version string
		Time    string
	}{m.Version, time.Unix(*unix, 0).UTC().Format(time.RFC3339)})
	if err != nil {
		log.Fatal(err)
	}
	for name, data := range map[string][]byte{
		base + ".zip":               zipBuf.Bytes(),
		base + ".mod":               goMod,
		base + ".info":              append(info, '\n'),
		filepath.Join(vdir, "list"): []byte(m.Version + "\n"),
	} {
		if err := os.WriteFile(name, data, 0o644); err != nil {
			log.Fatal(err)
		}
	}

	// What the go command checks when it downloads the zip.
	checked, err = modzip.CheckZip(m, base+".zip")
	if err == nil {
		err = checked.Err()
	}
	if err != nil {
		log.Fatalf("%s.zip: %v", base, err)
	}
	h1, err := dirhash.HashZip(base+".zip", dirhash.DefaultHash)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s %s %s (%d files, %d bytes)\n", m.Path, m.Version, h1, len(checked.Valid), zipBuf.Len())
}
