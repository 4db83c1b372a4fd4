// Package atomicfile writes files whole or not at all, durably: a reader
// sees the old content or the new, never a mix or a truncated file, and
// once WriteFile returns the new content survives a crash or power loss.
package atomicfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// WriteFile writes data to path with permissions perm, replacing what is
// there: it writes a temporary file in path's directory, syncs and closes
// it, renames it over path, and syncs the directory so that the rename
// itself is durable. Nothing half-written is ever visible at path; on an
// error path is as it was and the temporary file is removed. A crash can
// leave the temporary file, named by TempPrefix, which RemoveTemps
// removes.
//
// perm is set on the file exactly, as chmod sets it (the umask does not
// apply): the file's permissions are perm whether or not it existed.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write is WriteFile for content too large to hold in memory: write
// streams it into the temporary file, and path is replaced only if write
// returns nil, so write can refuse what it wrote (a download whose hash
// is wrong) and leave path as it was.
func Write(path string, perm fs.FileMode, write func(w io.Writer) error) error {
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, TempPrefix(name)+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		err = write(f)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(dir)
}

// TempPrefix is how the names of WriteFile's temporary files for a file
// named name begin: "." + name + "-", a hidden name that no reader of
// name takes for it.
func TempPrefix(name string) string { return "." + name + "-" }

// RemoveTemps removes the temporary files WriteFile left in dir for the
// file named name when a crash interrupted it. Only call it when no
// WriteFile of that file can be running: it would fail that write.
func RemoveTemps(dir, name string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	prefix := TempPrefix(name)
	removed := false
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) || e.IsDir() {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		removed = true
	}
	if removed {
		return SyncDir(dir)
	}
	return nil
}

// SyncDir makes the entries of dir durable: files created, renamed or
// removed in it. Windows cannot open a directory for syncing, and makes
// renames durable without, so there it does nothing.
func SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
