package maildir

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Metadata (RFC 5464 METADATA and METADATA-SERVER): entries of a mailbox
// are kept in tern-metadata inside the folder's directory (INBOX's in the
// root), so that RENAME carries them and DELETE removes them with the
// folder; the user's server entries are in tern-server-metadata in the
// root. Both files read
//
//	tern-metadata 1
//	<entry> <value in base64>
//	...
//	.
//
// one line per entry in name order; entry names are lower case (RFC 5464
// 3.2: they are case-insensitive) printable ASCII without spaces. A file
// is replaced whole (temporary file, fsync, rename, fsync of the
// directory) under the lock tern-metadata.lock in the root, which also
// makes the per-user limits exact. A file that does not parse is treated
// as empty and replaced at the next change.

const (
	metadataName       = "tern-metadata"
	serverMetadataName = "tern-server-metadata"
	metadataLockName   = "tern-metadata.lock"
	metadataMagic      = "tern-metadata 1"
	// maxEntryName bounds an entry name (RFC 5464 does not; tern does, so
	// that a name costs bounded memory and a line stays short).
	maxEntryName = 1024
)

// MetadataLimits are the configured bounds of SetMetadata.
type MetadataLimits struct {
	MaxSize    int64 // one value
	MaxEntries int   // entries of one mailbox, or of the server
	MaxTotal   int64 // names and values of all entries of the user
}

// ErrMetadataTooMany: a change would pass MaxEntries or MaxTotal (RFC 5464
// 4.3: NO [METADATA TOOMANY]).
var ErrMetadataTooMany = errors.New("maildir: too many metadata entries")

// ErrMetadataTooLarge: a value is larger than MaxSize (RFC 5464 4.3: NO
// [METADATA MAXSIZE n]).
var ErrMetadataTooLarge = errors.New("maildir: metadata value too large")

// ErrInvalidEntry: an entry name that RFC 5464 3.2 does not allow.
var ErrInvalidEntry = errors.New("maildir: invalid metadata entry name")

// ValidEntryName checks an entry name (already lower case): it starts with
// /private/ or /shared/ (RFC 5464 3.2), has no empty level ("//"), does
// not end in "/", has neither "*" nor "%", and is printable ASCII.
func ValidEntryName(e string) bool {
	if len(e) > maxEntryName || !(strings.HasPrefix(e, "/private/") || strings.HasPrefix(e, "/shared/")) ||
		strings.HasSuffix(e, "/") || strings.Contains(e, "//") {
		return false
	}
	for i := 0; i < len(e); i++ {
		if c := e[i]; c <= 0x20 || c >= 0x7f || c == '*' || c == '%' || (c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// metadataFile returns the directory and file name of the entries of
// mailbox ("" for the server's).
func (m *Mailbox) metadataFile(mailbox string) (dir, name string, err error) {
	if mailbox == "" {
		return m.root, serverMetadataName, nil
	}
	dir, err = m.resolve(mailbox)
	if err != nil {
		return "", "", err
	}
	if !IsInbox(mailbox) {
		ok, err := exists(dir)
		if err != nil {
			return "", "", err
		}
		if !ok {
			return "", "", fmt.Errorf("metadata of %q: %w", mailbox, ErrNotFound)
		}
	}
	return dir, metadataName, nil
}

// Metadata returns the entries of mailbox ("" for the server's).
// ErrNotFound when the mailbox does not exist.
func (m *Mailbox) Metadata(mailbox string) (map[string][]byte, error) {
	dir, name, err := m.metadataFile(mailbox)
	if err != nil {
		return nil, err
	}
	return readMetadata(filepath.Join(dir, name))
}

func readMetadata(p string) (map[string][]byte, error) {
	data, err := readFileNoFollow(p)
	if errors.Is(err, os.ErrNotExist) {
		return map[string][]byte{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", p, err)
	}
	out, err := parseMetadata(data)
	if err != nil {
		logger().Warn("maildir: damaged metadata file, read as empty", "path", p, "err", err)
		return map[string][]byte{}, nil
	}
	return out, nil
}

func parseMetadata(data []byte) (map[string][]byte, error) {
	lines := strings.Split(string(data), "\n")
	if len(lines) < 3 || lines[0] != metadataMagic || lines[len(lines)-1] != "" || lines[len(lines)-2] != "." {
		return nil, errors.New("bad header or trailer")
	}
	out := make(map[string][]byte, len(lines)-3)
	for _, l := range lines[1 : len(lines)-2] {
		k, v, ok := strings.Cut(l, " ")
		if !ok || !ValidEntryName(k) {
			return nil, fmt.Errorf("bad line %q", l)
		}
		val, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("bad value of %q", k)
		}
		out[k] = val
	}
	return out, nil
}

func marshalMetadata(entries map[string][]byte) []byte {
	names := make([]string, 0, len(entries))
	for k := range entries {
		names = append(names, k)
	}
	sort.Strings(names)
	var b bytes.Buffer
	b.WriteString(metadataMagic + "\n")
	for _, k := range names {
		b.WriteString(k)
		b.WriteByte(' ')
		b.WriteString(base64.StdEncoding.EncodeToString(entries[k]))
		b.WriteByte('\n')
	}
	b.WriteString(".\n")
	return b.Bytes()
}

// SetMetadata changes entries of mailbox ("" for the server's): each name
// of set gets its value, or is removed when the value is nil (RFC 5464
// 4.3: NIL). All or nothing: ErrMetadataTooLarge or ErrMetadataTooMany
// when a limit would be passed, ErrInvalidEntry for a bad name,
// ErrNotFound when the mailbox does not exist.
func (m *Mailbox) SetMetadata(mailbox string, set map[string][]byte, lim MetadataLimits) error {
	for k, v := range set {
		if !ValidEntryName(k) {
			return fmt.Errorf("entry %q: %w", k, ErrInvalidEntry)
		}
		if int64(len(v)) > lim.MaxSize {
			return fmt.Errorf("entry %q: %w", k, ErrMetadataTooLarge)
		}
	}
	lk, err := lockFile(filepath.Join(m.root, metadataLockName), true)
	if err != nil {
		return err
	}
	defer lk.Close()
	dir, name, err := m.metadataFile(mailbox)
	if err != nil {
		return err
	}
	p := filepath.Join(dir, name)
	cur, err := readMetadata(p)
	if err != nil {
		return err
	}
	before := metadataSize(cur)
	changed := false
	for k, v := range set {
		old, had := cur[k]
		switch {
		case v == nil && had:
			delete(cur, k)
			changed = true
		case v != nil && (!had || !bytes.Equal(old, v)):
			cur[k] = v
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if len(cur) > lim.MaxEntries {
		return fmt.Errorf("metadata of %q: %d entries: %w", mailbox, len(cur), ErrMetadataTooMany)
	}
	if after := metadataSize(cur); after > before {
		total, err := m.metadataTotal()
		if err != nil {
			return err
		}
		if total-before+after > lim.MaxTotal {
			return fmt.Errorf("metadata of %q: %d bytes in all: %w", mailbox, total-before+after, ErrMetadataTooMany)
		}
	}
	if len(cur) == 0 {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %q: %w", p, err)
		}
		return syncDir(dir)
	}
	return writeFileAtomic(dir, name, marshalMetadata(cur))
}

func metadataSize(entries map[string][]byte) int64 {
	var n int64
	for k, v := range entries {
		n += int64(len(k) + len(v))
	}
	return n
}

// metadataTotal sums the entries of the server and of every folder.
func (m *Mailbox) metadataTotal() (int64, error) {
	names, err := m.folderNames()
	if err != nil {
		return 0, err
	}
	paths := []string{filepath.Join(m.root, serverMetadataName), filepath.Join(m.root, metadataName)}
	for _, n := range names {
		paths = append(paths, filepath.Join(folderDir(m.root, n), metadataName))
	}
	var total int64
	for _, p := range paths {
		e, err := readMetadata(p)
		if err != nil {
			return 0, err
		}
		total += metadataSize(e)
	}
	return total, nil
}

// MetadataStamp identifies the version of the entries of mailbox ("" for
// the server's) without reading them: a file is replaced whole (a new
// inode) at each change, so inode, size and modification time differ
// after one. "" when there are no entries; ErrNotFound when the mailbox
// does not exist. IMAP NOTIFY (RFC 5465 5.6, 5.7) stats these to find the
// changes made by other processes.
func (m *Mailbox) MetadataStamp(mailbox string) (string, error) {
	dir, name, err := m.metadataFile(mailbox)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, name)
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("stat %q: %w", p, err)
	}
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf("%d.%d.%d", ino, fi.Size(), fi.ModTime().UnixNano()), nil
}
