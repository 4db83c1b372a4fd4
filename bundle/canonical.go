package bundle

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"github.com/mds-dev/mds"
)

// The canonical form of a bundle is the bundle with every entry stored,
// under the headers Pack writes (entryHeader): the same layout, entries
// and order, but bytes that depend on nothing but the manifest bytes, the
// signature and the files' contents. Pack chooses each entry's method by
// what deflate makes of it, which another deflate implementation, or
// another version of this one, could decide otherwise; a stored entry is
// its bytes. So a device that installed a bundle and kept manifest.json
// and manifest.sig rebuilds the exact canonical bytes from its installed
// files, and a delta from them to the canonical form of the next bundle
// applies there. A bundle Pack stored whole (no file was smaller
// deflated) is its own canonical form.

// CanonicalSize is the exact size in bytes of the canonical form of a
// bundle whose manifest.json is manifestLen bytes, whose manifest.sig is
// sigLen and which holds files: what WriteCanonical writes.
func CanonicalSize(manifestLen, sigLen int, files []File) int64 {
	n := headSize(manifestLen, sigLen)
	for _, f := range files {
		n += archived(FilesPrefix+f.Path, f.Size)
	}
	return n
}

// WriteCanonical writes the canonical form of the bundle of manifest (the
// bytes of manifest.json), sig (of manifest.sig) and files, the files the
// manifest lists, whose contents open returns by path; it returns how
// many bytes it wrote. It reads every file twice, since a stored entry's
// local header holds the CRC-32 of its data before the data: first for
// that and to check the file's size and SHA-256 against files, before it
// writes anything, then to copy it, checking them again. A file that does
// not match fails with an error matching ErrCorrupt. An error of open,
// or of reading what it returned, is returned wrapped, so that
// errors.Is(err, fs.ErrNotExist) tells a missing file. It refuses what
// Open would: files that ValidFiles refuses, an empty signature, manifest
// or signature bytes over MaxManifest or MaxSignature. On error, what
// reached w is not a bundle.
//
// A canonical form is larger than the bundle Pack made when Pack deflated
// files, and can exceed the Limits.MaxArchive the bundle was within:
// open it with a MaxArchive of at least its CanonicalSize.
func WriteCanonical(w io.Writer, manifest, sig []byte, files []File, open func(path string) (io.ReadCloser, error)) (int64, error) {
	switch {
	case len(manifest) > MaxManifest:
		return 0, mds.Errorf(mds.EINVALID, "the manifest is %d bytes; at most %d", len(manifest), MaxManifest)
	case len(sig) == 0:
		return 0, mds.Errorf(mds.EINVALID, "the signature is empty; give the bytes of %s", SignatureName)
	case len(sig) > MaxSignature:
		return 0, mds.Errorf(mds.EINVALID, "the signature is %d bytes; at most %d", len(sig), MaxSignature)
	}
	if err := ValidFiles(files); err != nil {
		return 0, err
	}
	if err := fitsWithoutZip64(len(manifest), len(sig), files); err != nil {
		return 0, err
	}
	crcs := make([]uint32, len(files))
	for i, f := range files {
		crc, err := copyFile(io.Discard, f, open)
		if err != nil {
			return 0, err
		}
		crcs[i] = crc
	}
	return writeStored(w, manifest, sig, files, crcs, func(i int, w io.Writer) error {
		_, err := copyFile(w, files[i], open)
		return err
	})
}

// WriteCanonical writes the canonical form of b, decompressing its
// entries, and returns how many bytes it wrote: the same bytes as
// WriteCanonical of b's manifest bytes, signature, files and their
// contents. It checks every file's size, CRC-32 and SHA-256 as it copies
// it, as CheckFiles does; on error, what reached w is not a bundle.
func (b *Bundle) WriteCanonical(w io.Writer) (int64, error) {
	if err := fitsWithoutZip64(len(b.ManifestBytes), len(b.Signature), b.Files); err != nil {
		return 0, err
	}
	crcs := make([]uint32, len(b.entries))
	for i, e := range b.entries {
		crcs[i] = e.CRC32 // what copyEntry holds the content to
	}
	return writeStored(w, b.ManifestBytes, b.Signature, b.Files, crcs, func(i int, w io.Writer) error {
		f := b.Files[i]
		return copyEntry(w, b.entries[i], f.Path, f.Size, f.SHA256)
	})
}

// fitsWithoutZip64 refuses a canonical form that would need zip64
// records, which Open refuses and CanonicalSize does not count: more
// entries than 16 bits count, or offsets past 32 bits.
func fitsWithoutZip64(manifestLen, sigLen int, files []File) error {
	if len(files)+2 >= math.MaxUint16 || CanonicalSize(manifestLen, sigLen, files) >= math.MaxUint32 {
		return mds.Errorf(mds.EINVALID, "the canonical form of %d files of %d bytes in all would need zip64, which a bundle never uses", len(files), TotalSize(files))
	}
	return nil
}

// writeStored writes a bundle of manifest, sig and files, every entry
// stored: file i's with the CRC-32 crcs[i] and what content(i) writes.
func writeStored(w io.Writer, manifest, sig []byte, files []File, crcs []uint32, content func(i int, w io.Writer) error) (int64, error) {
	cw := &counter{w: w}
	zw := zip.NewWriter(cw)
	if err := writeHead(zw, manifest, sig); err != nil {
		return cw.n, err
	}
	for i, f := range files {
		ew, err := zw.CreateRaw(entryHeader(FilesPrefix+f.Path, zip.Store, crcs[i], f.Size, f.Size))
		if err != nil {
			return cw.n, err
		}
		if err := content(i, ew); err != nil {
			return cw.n, err
		}
	}
	err := zw.Close()
	return cw.n, err
}

// copyFile copies the content of f, which open returns, to w, reading at
// most f.Size+1 bytes, checks its size and SHA-256 against f, and returns
// its CRC-32.
func copyFile(w io.Writer, f File, open func(path string) (io.ReadCloser, error)) (uint32, error) {
	rc, err := open(f.Path)
	if err != nil {
		return 0, fmt.Errorf("bundle: opening %s: %w", f.Path, err)
	}
	defer rc.Close()
	src := &sourceReader{r: io.LimitReader(rc, f.Size+1)}
	h, c := sha256.New(), crc32.NewIEEE()
	n, err := io.Copy(io.MultiWriter(w, h, c), src)
	switch {
	case src.err != nil:
		return 0, fmt.Errorf("bundle: reading %s: %w", f.Path, src.err)
	case err != nil:
		return 0, err
	case n > f.Size:
		return 0, refuse(ErrCorrupt, nil, "file %s holds more than the %d bytes the manifest declares: this copy of the package is damaged; download it whole again", f.Path, f.Size)
	case n < f.Size:
		return 0, refuse(ErrCorrupt, nil, "file %s ends after %d bytes, but the manifest declares %d: this copy of the package is damaged; download it whole again", f.Path, n, f.Size)
	case hex.EncodeToString(h.Sum(nil)) != f.SHA256:
		return 0, refuse(ErrCorrupt, nil, "file %s does not match its sha256 in the manifest: this copy of the package is damaged or was altered; download it whole again", f.Path)
	}
	return c.Sum32(), nil
}
