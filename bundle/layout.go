package bundle

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/mds-dev/mds"
)

// The layout of a bundle, checked here byte by byte before archive/zip
// reads the archive: what a streaming reader (Java's ZipInputStream, which
// reads local headers from the first byte on) sees must be exactly what
// the central directory says, so that the bytes the server checked are
// the bytes every device runs, and nothing unsigned rides along.
//
//   - The archive is its entries, then its central directory, then its
//     end record, with no byte before, between or after them: the first
//     local header at offset 0, each next one where the previous entry's
//     data ends, the central directory where the last entry's data ends,
//     the end record right after it, and no archive comment.
//   - Each local header says what the central directory says: name,
//     general purpose flags, method, CRC-32 and sizes. No data descriptor
//     (flag 0x8): the sizes are in the local header.
//   - No zip64, no entry comments, names of at most len(FilesPrefix) +
//     MaxPath bytes and extra fields of at most maxExtra bytes a header,
//     so that reading the central directory takes memory in proportion
//     to its entry count, itself bounded by Limits.MaxFiles.

// Sizes and signatures of the zip records.
const (
	endLen         = 22 // the end of central directory record, without comment
	dirHeaderLen   = 46 // a central directory record, without name, extra and comment
	localHeaderLen = 30 // a local header, without name and extra
	locator64Len   = 20 // the zip64 end of central directory locator

	endSig       = 0x06054b50
	dirHeaderSig = 0x02014b50
	localSig     = 0x04034b50
	locator64Sig = 0x07064b50

	zip64ExtraID = 0x0001
	flagEncrypt  = 0x1
	flagDataDesc = 0x8
	maxName      = len(FilesPrefix) + MaxPath
	maxExtra     = 1 << 10 // bytes of the extra fields of one header
)

// record is what the central directory says of one entry.
type record struct {
	name          string
	flags, method uint16
	crc           uint32
	csize, usize  uint32
	offset        int64 // of the local header
	dataOffset    int64 // of the data, once checkLayout read the local header
}

// describe names entry i (0-based) for messages: its 1-based number and
// name.
func (r *record) describe(i int) string { return fmt.Sprintf("%d (%s)", i+1, r.name) }

// notZip is the refusal of bytes that are no zip archive at all.
func (f Format) notZip(format string, args ...any) error {
	return mds.Errorf(mds.EINVALID, "the file is not a zip archive (%s); %s is a zip starting with %s", fmt.Sprintf(format, args...), f.Noun, ManifestName)
}

// corrupt is the refusal of a zip archive whose records contradict each
// other.
func (f Format) corrupt(format string, args ...any) error {
	return mds.Errorf(mds.EINVALID, "%s: the archive is corrupt; download it again, or %s", fmt.Sprintf(format, args...), f.repack())
}

// readFailed tells an archive that points outside itself or ends early
// from a failure of the reader.
func (f Format) readFailed(err error, what string) error {
	if malformed(err) {
		return f.notZip("%s: %v", what, err)
	}
	return fmt.Errorf("bundle: reading the archive: %w", err)
}

// readDirectory reads the end record and the central directory of the
// size bytes of r, refusing an entry count over lim.MaxFiles+2 after
// reading only the end record, and returns the records and the offset of
// the central directory.
func (f Format) readDirectory(r io.ReaderAt, size int64, lim Limits) ([]record, int64, error) {
	if size < endLen {
		return nil, 0, f.notZip("%d bytes, shorter than a zip's end record", size)
	}
	var end [endLen]byte
	if _, err := r.ReadAt(end[:], size-endLen); err != nil {
		return nil, 0, f.readFailed(err, "reading the end record")
	}
	le := binary.LittleEndian
	if le.Uint32(end[:]) != endSig || le.Uint16(end[20:]) != 0 {
		return nil, 0, f.noEndRecord(r, size)
	}
	disk, dirDisk := le.Uint16(end[4:]), le.Uint16(end[6:])
	onDisk, count := le.Uint16(end[8:]), le.Uint16(end[10:])
	dirSize, dirOffset := le.Uint32(end[12:]), le.Uint32(end[16:])
	switch {
	case disk != 0 || dirDisk != 0 || onDisk != count:
		return nil, 0, mds.Errorf(mds.EINVALID, "the archive spans several disks; %s is one file: %s", f.Noun, f.repack())
	case count == 0xffff || dirSize == 0xffffffff || dirOffset == 0xffffffff:
		return nil, 0, f.zip64Refusal("the archive")
	case int64(count)-2 > int64(lim.MaxFiles):
		return nil, 0, mds.Errorf(mds.EINVALID, "the archive has %d entries; at most %d files (besides %s and %s) are accepted", count, lim.MaxFiles, ManifestName, SignatureName)
	case int64(dirSize) < int64(count)*dirHeaderLen || int64(dirSize) > size-endLen:
		return nil, 0, f.corrupt("its end record gives %d entries a central directory of %d bytes, in an archive of %d", count, dirSize, size)
	}
	dirEnd := int64(dirOffset) + int64(dirSize)
	switch {
	case dirEnd > size-endLen:
		return nil, 0, f.corrupt("its central directory (%d bytes at offset %d) runs past its end record at offset %d", dirSize, dirOffset, size-endLen)
	case dirEnd < size-endLen:
		return nil, 0, mds.Errorf(mds.EINVALID, "unexpected %d bytes between the central directory and its end record; %s has none: %s", size-endLen-dirEnd, f.Noun, f.repack())
	}
	if dirSize >= locator64Len {
		// archive/zip looks for a zip64 locator there when the end
		// record's fields allow it; none may be there for it to find.
		var sig [4]byte
		if _, err := r.ReadAt(sig[:], size-endLen-locator64Len); err != nil {
			return nil, 0, f.readFailed(err, "reading the central directory")
		}
		if le.Uint32(sig[:]) == locator64Sig {
			return nil, 0, f.zip64Refusal("the archive")
		}
	}

	recs := make([]record, count)
	br := bufio.NewReader(io.NewSectionReader(r, int64(dirOffset), int64(dirSize)))
	var read int64
	for i := range recs {
		var h [dirHeaderLen]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, 0, f.corrupt("its central directory of %d bytes ends within entry %d of %d", dirSize, i+1, count)
			}
			return nil, 0, f.readFailed(err, "reading the central directory")
		}
		if le.Uint32(h[:]) != dirHeaderSig {
			return nil, 0, f.corrupt("central directory record %d of %d is not one", i+1, count)
		}
		nameLen, extraLen, commentLen := int(le.Uint16(h[28:])), int(le.Uint16(h[30:])), int(le.Uint16(h[32:]))
		if nameLen > maxName {
			return nil, 0, mds.Errorf(mds.EINVALID, "entry %d has a name of %d bytes; %s's entry names are at most %d (%s and a path of at most %d)", i+1, nameLen, f.Noun, maxName, FilesPrefix, MaxPath)
		}
		if extraLen > maxExtra {
			return nil, 0, mds.Errorf(mds.EINVALID, "entry %d has %d bytes of extra fields in the central directory; at most %d: %s", i+1, extraLen, maxExtra, f.repack())
		}
		ne := make([]byte, nameLen+extraLen)
		if _, err := io.ReadFull(br, ne); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, 0, f.corrupt("its central directory of %d bytes ends within entry %d of %d", dirSize, i+1, count)
			}
			return nil, 0, f.readFailed(err, "reading the central directory")
		}
		rec := &recs[i]
		*rec = record{
			name:   string(ne[:nameLen]),
			flags:  le.Uint16(h[8:]),
			method: le.Uint16(h[10:]),
			crc:    le.Uint32(h[16:]),
			csize:  le.Uint32(h[20:]),
			usize:  le.Uint32(h[24:]),
			offset: int64(le.Uint32(h[42:])),
		}
		switch {
		case commentLen != 0:
			return nil, 0, mds.Errorf(mds.EINVALID, "entry %q has a comment; %s's entries have none: %s", rec.name, f.Noun, f.repack())
		case le.Uint16(h[34:]) != 0:
			return nil, 0, mds.Errorf(mds.EINVALID, "entry %q is on another disk; %s is one file: %s", rec.name, f.Noun, f.repack())
		case rec.csize == 0xffffffff || rec.usize == 0xffffffff || le.Uint32(h[42:]) == 0xffffffff || hasZip64(ne[nameLen:]):
			return nil, 0, f.zip64Refusal(fmt.Sprintf("entry %q", rec.name))
		case rec.flags&flagDataDesc != 0:
			return nil, 0, f.dataDescriptorRefusal(rec.name)
		}
		read += dirHeaderLen + int64(len(ne))
	}
	if read != int64(dirSize) {
		return nil, 0, mds.Errorf(mds.EINVALID, "unexpected %d bytes in the central directory after its %d entries: %s", int64(dirSize)-read, count, f.repack())
	}
	return recs, int64(dirOffset), nil
}

// noEndRecord explains why the last bytes of the archive are not its end
// record: a comment follows it, bytes do, or there is none.
func (f Format) noEndRecord(r io.ReaderAt, size int64) error {
	n := min(size, endLen+0xffff)
	tail := make([]byte, n)
	if _, err := r.ReadAt(tail, size-n); err != nil {
		return f.readFailed(err, "reading the end record")
	}
	for i := len(tail) - endLen; i >= 0; i-- {
		if binary.LittleEndian.Uint32(tail[i:]) != endSig {
			continue
		}
		comment := int(binary.LittleEndian.Uint16(tail[i+20:]))
		after := len(tail) - i - endLen
		if comment > 0 && comment == after {
			return mds.Errorf(mds.EINVALID, "the archive has a comment of %d bytes; %s has none: %s", comment, f.Noun, f.repack())
		}
		if comment <= after {
			return mds.Errorf(mds.EINVALID, "unexpected %d bytes after the archive's end record; %s ends with it: %s", after-comment, f.Noun, f.repack())
		}
	}
	return f.notZip("no end of central directory record")
}

// hasZip64 reports whether the extra fields hold a zip64 one.
func hasZip64(extra []byte) bool {
	for len(extra) >= 4 {
		id, n := binary.LittleEndian.Uint16(extra), int(binary.LittleEndian.Uint16(extra[2:]))
		if id == zip64ExtraID {
			return true
		}
		if n > len(extra)-4 {
			return false
		}
		extra = extra[4+n:]
	}
	return false
}

func (f Format) zip64Refusal(what string) error {
	return mds.Errorf(mds.EINVALID, "%s uses zip64 fields; %s is far smaller than 4 GiB and has none: %s", what, f.Noun, f.repack())
}

func (f Format) dataDescriptorRefusal(name string) error {
	return mds.Errorf(mds.EINVALID, "entry %q uses a data descriptor (general purpose flag 0x8); %s has each entry's sizes and CRC-32 in its local header: %s", name, f.Noun, f.repack())
}

// checkLayout reads every entry's local header and checks that the
// entries follow each other from offset 0 to the central directory at
// dirOffset without a gap or an overlap, and that each local header says
// what the central directory does. It sets the records' dataOffset.
func (f Format) checkLayout(r io.ReaderAt, recs []record, dirOffset int64) error {
	le := binary.LittleEndian
	var end int64 // where the previous entry's data ends
	for i := range recs {
		rec := &recs[i]
		switch {
		case rec.offset > end && i == 0:
			return mds.Errorf(mds.EINVALID, "unexpected %d bytes before the first entry %s; %s starts with its first entry: %s", rec.offset, rec.describe(i), f.Noun, f.repack())
		case rec.offset > end:
			return mds.Errorf(mds.EINVALID, "unexpected %d bytes between entries %s and %s; %s's entries follow each other without gaps: %s", rec.offset-end, recs[i-1].describe(i-1), rec.describe(i), f.Noun, f.repack())
		case rec.offset < end || rec.offset+localHeaderLen > dirOffset:
			return f.overlap(rec.name)
		}
		var h [localHeaderLen]byte
		if _, err := r.ReadAt(h[:], rec.offset); err != nil {
			return f.readFailed(err, fmt.Sprintf("reading the local header of entry %q", rec.name))
		}
		if le.Uint32(h[:]) != localSig {
			return f.corrupt("entry %q has no local header at offset %d, where the central directory places it", rec.name, rec.offset)
		}
		nameLen, extraLen := int(le.Uint16(h[26:])), int(le.Uint16(h[28:]))
		rec.dataOffset = rec.offset + localHeaderLen + int64(nameLen) + int64(extraLen)
		if rec.dataOffset+int64(rec.csize) > dirOffset {
			return f.overlap(rec.name)
		}
		if nameLen != len(rec.name) {
			return f.mismatch(rec.name, "a name of %d bytes", nameLen, "%d", len(rec.name))
		}
		if extraLen > maxExtra {
			return mds.Errorf(mds.EINVALID, "entry %q has %d bytes of extra fields in its local header; at most %d: %s", rec.name, extraLen, maxExtra, f.repack())
		}
		ne := make([]byte, nameLen+extraLen)
		if _, err := r.ReadAt(ne, rec.offset+localHeaderLen); err != nil {
			return f.readFailed(err, fmt.Sprintf("reading the local header of entry %q", rec.name))
		}
		flags, method := le.Uint16(h[6:]), le.Uint16(h[8:])
		crc, csize, usize := le.Uint32(h[14:]), le.Uint32(h[18:]), le.Uint32(h[22:])
		switch {
		case !bytes.Equal(ne[:nameLen], []byte(rec.name)):
			return f.mismatch(rec.name, "the name %q", ne[:nameLen], "%q", rec.name)
		case hasZip64(ne[nameLen:]):
			return f.zip64Refusal(fmt.Sprintf("entry %q", rec.name))
		case flags&flagDataDesc != 0:
			return f.dataDescriptorRefusal(rec.name)
		case flags != rec.flags:
			return f.mismatch(rec.name, "general purpose flags 0x%04x", flags, "0x%04x", rec.flags)
		case method != rec.method:
			return f.mismatch(rec.name, "method %d", method, "%d", rec.method)
		case crc != rec.crc:
			return f.mismatch(rec.name, "CRC-32 %08x", crc, "%08x", rec.crc)
		case csize != rec.csize:
			return f.mismatch(rec.name, "a compressed size of %d", csize, "%d", rec.csize)
		case usize != rec.usize:
			return f.mismatch(rec.name, "a size of %d", usize, "%d", rec.usize)
		}
		end = rec.dataOffset + int64(rec.csize)
	}
	if end < dirOffset {
		if len(recs) == 0 {
			return mds.Errorf(mds.EINVALID, "unexpected %d bytes before the central directory of an archive without entries: %s", dirOffset, f.repack())
		}
		return mds.Errorf(mds.EINVALID, "unexpected %d bytes between the last entry %s and the central directory; %s has none: %s", dirOffset-end, recs[len(recs)-1].describe(len(recs)-1), f.Noun, f.repack())
	}
	return nil
}

func (f Format) overlap(name string) error {
	return mds.Errorf(mds.EINVALID, "entry %q overlaps another or runs past the end of the archive; its entries must follow each other in directory order: %s", name, f.repack())
}

// mismatch refuses an entry whose local header says local (formatted
// with localFormat) where the central directory says central.
func (f Format) mismatch(name, localFormat string, local any, centralFormat string, central any) error {
	return mds.Errorf(mds.EINVALID, "the local header of entry %q says "+localFormat+" where the central directory says "+centralFormat+"; a streaming reader would read another entry than the one checked: %s", name, local, central, f.repack())
}

// sameAsRead checks that archive/zip read the records checked here: the
// same entries, in the same order, with the same fields and data.
func (f Format) sameAsRead(entries []*zip.File, recs []record) error {
	if len(entries) != len(recs) {
		return f.corrupt("its central directory reads as %d entries, its end record says %d", len(entries), len(recs))
	}
	for i, e := range entries {
		rec := &recs[i]
		off, err := e.DataOffset()
		if err != nil {
			return f.readFailed(err, fmt.Sprintf("reading the local header of entry %q", rec.name))
		}
		if e.Name != rec.name || e.Flags != rec.flags || e.Method != rec.method || e.CRC32 != rec.crc ||
			e.CompressedSize64 != uint64(rec.csize) || e.UncompressedSize64 != uint64(rec.usize) || off != rec.dataOffset {
			return f.corrupt("entry %s reads differently from how its records were checked", rec.describe(i))
		}
	}
	return nil
}
