package maildir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// Mailbox is one user's Maildir++ tree: INBOX at the root, every other
// folder in a directory ".Name.Sub" beside it.
type Mailbox struct {
	root string
}

// Open opens (creating if needed) the Maildir at root: root/{cur,new,tmp}
// with mode 0700, and the folders Sent, Drafts, Trash, Junk and Archive with
// their RFC 6154 SPECIAL-USE roles; a default folder that Open creates is
// also subscribed.
func Open(root string) (*Mailbox, error) {
	root = filepath.Clean(root)
	if err := ensureMaildir(root); err != nil {
		return nil, err
	}
	m := &Mailbox{root: root}
	var created []string
	for _, name := range defaultFolders {
		err := m.Create(name)
		if err != nil && !errors.Is(err, ErrExists) {
			return nil, fmt.Errorf("create default folder %q: %w", name, err)
		}
		if err == nil {
			created = append(created, name)
		}
	}
	// A default folder is subscribed when it is created, and only then:
	// clients such as Roundcube show only subscribed folders, and a
	// user's later UNSUBSCRIBE must stick.
	if len(created) > 0 {
		err := m.editSubscriptions(func(s []string) []string {
			for _, name := range created {
				if !slices.Contains(s, name) {
					s = append(s, name)
				}
			}
			return s
		})
		if err != nil {
			return nil, fmt.Errorf("subscribe default folders: %w", err)
		}
	}
	m.removeDeleted()
	return m, nil
}

// Root returns the Maildir root directory.
func (m *Mailbox) Root() string { return m.root }

// FolderInfo describes a folder for LIST.
type FolderInfo struct {
	Name        string
	SpecialUse  string // RFC 6154: \Sent, \Drafts, \Trash, \Junk, \Archive or ""
	HasChildren bool
}

// List returns INBOX first, then every folder sorted by name. Directories
// whose names do not decode to a valid folder name, and symlinks, are
// skipped.
func (m *Mailbox) List() ([]FolderInfo, error) {
	names, err := m.folderNames()
	if err != nil {
		return nil, err
	}
	out := make([]FolderInfo, 0, len(names)+1)
	out = append(out, FolderInfo{Name: "INBOX"})
	for i, n := range names {
		fi := FolderInfo{Name: n, SpecialUse: specialUse[n]}
		if i+1 < len(names) && strings.HasPrefix(names[i+1], n+Separator) {
			fi.HasChildren = true
		}
		out = append(out, fi)
	}
	return out, nil
}

// folderNames lists the folders (not INBOX), sorted.
func (m *Mailbox) folderNames() ([]string, error) {
	ents, err := os.ReadDir(m.root)
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", m.root, err)
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() || e.Type()&os.ModeSymlink != 0 {
			continue
		}
		if n, ok := decodeDirName(e.Name()); ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// resolve validates name and returns its directory.
func (m *Mailbox) resolve(name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", fmt.Errorf("folder %q: %w", name, err)
	}
	return folderDir(m.root, name), nil
}

// exists reports whether dir is an existing folder directory; a symlink or
// other non-directory in its place is ErrInvalidName.
func exists(dir string) (bool, error) {
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stat %q: %w", dir, err)
	}
	if !fi.Mode().IsDir() {
		return false, fmt.Errorf("%w: %q is not a directory", ErrInvalidName, dir)
	}
	return true, nil
}

// Create creates a folder. RFC 3501 6.3.3: missing superior names are
// created too ("a.b.c" creates "a" and "a.b"). ErrExists if it exists.
func (m *Mailbox) Create(name string) error {
	if IsInbox(name) {
		return fmt.Errorf("create INBOX: %w", ErrExists)
	}
	dir, err := m.resolve(name)
	if err != nil {
		return err
	}
	ok, err := exists(dir)
	if err != nil {
		return err
	}
	if ok {
		return fmt.Errorf("create %q: %w", name, ErrExists)
	}
	parts := strings.Split(name, Separator)
	for i := 1; i < len(parts); i++ {
		parent := strings.Join(parts[:i], Separator)
		if IsInbox(parent) {
			continue
		}
		if err := m.mkFolder(folderDir(m.root, parent)); err != nil && !errors.Is(err, ErrExists) {
			return err
		}
	}
	if err := m.mkFolder(dir); err != nil {
		if errors.Is(err, ErrExists) {
			return fmt.Errorf("create %q: %w", name, ErrExists)
		}
		return err
	}
	return nil
}

// mkFolder creates one folder directory with cur/new/tmp and the Maildir++
// "maildirfolder" marker (which tells delivery agents such as maildrop that
// this is a subfolder). A crash half-way leaves a directory that Folder
// completes.
func (m *Mailbox) mkFolder(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			if _, cerr := exists(dir); cerr != nil {
				return cerr
			}
			return ErrExists
		}
		return fmt.Errorf("create %q: %w", dir, err)
	}
	if err := ensureMaildir(dir); err != nil {
		return err
	}
	if f, err := os.OpenFile(filepath.Join(dir, "maildirfolder"), os.O_CREATE|os.O_WRONLY|noFollow, 0o600); err == nil {
		f.Close()
	}
	return syncDir(m.root)
}

// Folder opens a folder. ErrNotFound if it does not exist, ErrInvalidName
// for an unsafe name or a directory that is a symlink.
func (m *Mailbox) Folder(name string) (*Folder, error) {
	dir, err := m.resolve(name)
	if err != nil {
		return nil, err
	}
	if !IsInbox(name) {
		ok, err := exists(dir)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("folder %q: %w", name, ErrNotFound)
		}
	} else {
		name = "INBOX"
	}
	if err := ensureMaildir(dir); err != nil {
		return nil, err
	}
	return &Folder{name: name, st: stateFor(dir)}, nil
}

// Deliver writes a message into the named folder (see the package-level
// Deliver). ErrNotFound if the folder does not exist.
func (m *Mailbox) Deliver(folder string, r io.Reader, flags []string) (key string, size int64, err error) {
	dir, err := m.resolve(folder)
	if err != nil {
		return "", 0, err
	}
	if !IsInbox(folder) {
		ok, err := exists(dir)
		if err != nil {
			return "", 0, err
		}
		if !ok {
			return "", 0, fmt.Errorf("deliver to %q: %w", folder, ErrNotFound)
		}
	}
	return Deliver(dir, r, flags)
}

// children lists the folders below name.
func (m *Mailbox) children(name string) ([]string, error) {
	names, err := m.folderNames()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, name+Separator) {
			out = append(out, n)
		}
	}
	return out, nil
}

// Delete removes a folder and its messages. RFC 3501 6.3.4: deleting INBOX
// is an error; a folder with subfolders is refused (ErrHasChildren), as
// Dovecot does. The directory is first renamed to "..tern-deleted.*" (which
// is not a folder name) and then removed, so a crash never leaves a
// half-deleted folder visible; Open removes such leftovers.
func (m *Mailbox) Delete(name string) error {
	if IsInbox(name) {
		return fmt.Errorf("delete INBOX: %w", ErrInvalidName)
	}
	dir, err := m.resolve(name)
	if err != nil {
		return err
	}
	ok, err := exists(dir)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("delete %q: %w", name, ErrNotFound)
	}
	kids, err := m.children(name)
	if err != nil {
		return err
	}
	if len(kids) > 0 {
		return fmt.Errorf("delete %q: %w", name, ErrHasChildren)
	}
	trash := filepath.Join(m.root, deletedPrefix+newBase(time.Now()))
	if err := os.Rename(dir, trash); err != nil {
		return fmt.Errorf("delete %q: %w", name, err)
	}
	if err := syncDir(m.root); err != nil {
		return err
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("delete %q: remove %q: %w", name, trash, err)
	}
	return nil
}

// deletedPrefix marks directories being removed; ".." cannot start a folder
// directory name.
const deletedPrefix = "..tern-deleted."

func (m *Mailbox) removeDeleted() {
	ents, err := os.ReadDir(m.root)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), deletedPrefix) {
			os.RemoveAll(filepath.Join(m.root, e.Name()))
		}
	}
}

// Rename renames a folder and its subfolders; missing superiors of the new
// name are created (RFC 3501 6.3.5). Renaming INBOX moves its messages into
// a new folder and leaves INBOX empty, its subfolders untouched (RFC 3501
// 6.3.5). The folder directory is renamed first, then each subfolder; a
// crash in between leaves subfolders under the old name, still listed and
// usable, and the rename can be repeated for them.
func (m *Mailbox) Rename(oldName, newName string) error {
	newDir, err := m.resolve(newName)
	if err != nil {
		return err
	}
	if IsInbox(newName) {
		return fmt.Errorf("rename to INBOX: %w", ErrExists)
	}
	if IsInbox(oldName) {
		return m.renameInbox(newName)
	}
	oldDir, err := m.resolve(oldName)
	if err != nil {
		return err
	}
	if strings.HasPrefix(newName+Separator, oldName+Separator) {
		return fmt.Errorf("rename %q into itself: %w", oldName, ErrInvalidName)
	}
	if ok, err := exists(oldDir); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("rename %q: %w", oldName, ErrNotFound)
	}
	if ok, err := exists(newDir); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("rename to %q: %w", newName, ErrExists)
	}
	kids, err := m.children(oldName)
	if err != nil {
		return err
	}
	// Check every new child name before moving anything.
	for _, k := range kids {
		if err := ValidateName(newName + k[len(oldName):]); err != nil {
			return fmt.Errorf("rename %q: child %q: %w", oldName, k, err)
		}
	}
	if i := strings.LastIndex(newName, Separator); i > 0 {
		if err := m.Create(newName[:i]); err != nil && !errors.Is(err, ErrExists) {
			return err
		}
	}
	if err := renameNoReplace(oldDir, newDir); err != nil {
		return fmt.Errorf("rename %q to %q: %w", oldName, newName, err)
	}
	for _, k := range kids {
		nk := newName + k[len(oldName):]
		if err := renameNoReplace(folderDir(m.root, k), folderDir(m.root, nk)); err != nil {
			return fmt.Errorf("rename %q to %q: %w", k, nk, err)
		}
	}
	return syncDir(m.root)
}

func (m *Mailbox) renameInbox(newName string) error {
	if err := m.Create(newName); err != nil {
		return err
	}
	src, err := m.Folder("INBOX")
	if err != nil {
		return err
	}
	dst, err := m.Folder(newName)
	if err != nil {
		return err
	}
	snap, err := src.Sync()
	if err != nil {
		return err
	}
	uids := make([]uint32, len(snap.Messages))
	for i, msg := range snap.Messages {
		uids[i] = msg.UID
	}
	_, _, err = src.Move(uids, dst)
	return err
}

// subscriptionsName is the subscriptions file in the Maildir root, in
// Dovecot's version 2 format so that both read it: a "V\t2" line, an empty
// line, then one name per line with its hierarchy levels in modified UTF-7
// separated by tabs. Lines of the older format (one name per line, "."
// between levels) are accepted on reading.
const (
	subscriptionsName     = "subscriptions"
	subscriptionsLockName = "tern-subscriptions.lock"
)

// Subscriptions returns the subscribed names, sorted.
func (m *Mailbox) Subscriptions() ([]string, error) {
	data, err := readFileNoFollow(filepath.Join(m.root, subscriptionsName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read subscriptions: %w", err)
	}
	return parseSubscriptions(data), nil
}

// parseSubscriptions reads both subscription file formats; names that do not
// decode or validate are skipped.
func parseSubscriptions(data []byte) []string {
	lines := strings.Split(string(data), "\n")
	sep := Separator
	if len(lines) > 0 && lines[0] == "V\t2" {
		lines, sep = lines[1:], "\t"
	}
	var out []string
	seen := map[string]bool{}
	for _, line := range lines {
		if line == "" {
			continue
		}
		parts := strings.Split(line, sep)
		ok := true
		for i, p := range parts {
			d, err := DecodeMUTF7(p)
			if err != nil || strings.Contains(d, Separator) {
				ok = false
				break
			}
			parts[i] = d
		}
		name := strings.Join(parts, Separator)
		if IsInbox(name) {
			name = "INBOX"
		}
		if !ok || ValidateName(name) != nil || seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func marshalSubscriptions(names []string) []byte {
	var b strings.Builder
	b.WriteString("V\t2\n\n")
	for _, n := range names {
		parts := strings.Split(n, Separator)
		for i, p := range parts {
			parts[i] = EncodeMUTF7(p)
		}
		b.WriteString(strings.Join(parts, "\t"))
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// Subscribe adds name to the subscriptions (RFC 3501 6.3.6). The folder need
// not exist.
func (m *Mailbox) Subscribe(name string) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("subscribe %q: %w", name, err)
	}
	if IsInbox(name) {
		name = "INBOX"
	}
	return m.editSubscriptions(func(s []string) []string {
		for _, x := range s {
			if x == name {
				return s
			}
		}
		return append(s, name)
	})
}

// Unsubscribe removes name from the subscriptions (RFC 3501 6.3.7).
func (m *Mailbox) Unsubscribe(name string) error {
	if IsInbox(name) {
		name = "INBOX"
	}
	return m.editSubscriptions(func(s []string) []string {
		out := s[:0]
		for _, x := range s {
			if x != name {
				out = append(out, x)
			}
		}
		return out
	})
}

func (m *Mailbox) editSubscriptions(edit func([]string) []string) error {
	lk, err := lockFile(filepath.Join(m.root, subscriptionsLockName), true)
	if err != nil {
		return err
	}
	defer lk.Close()
	cur, err := m.Subscriptions()
	if err != nil {
		return err
	}
	next := edit(cur)
	sort.Strings(next)
	return writeFileAtomic(m.root, subscriptionsName, marshalSubscriptions(next))
}

// TryLock takes a non-blocking exclusive lock named name (letters, digits,
// ".", "-", "_"; e.g. "pop3") on the whole Mailbox, across processes and
// within one: RFC 1939 8: a POP3 server must allow one session per maildrop.
// ErrLocked if held. The lock dies with its process; release frees it.
func (m *Mailbox) TryLock(name string) (release func(), err error) {
	if name == "" || len(name) > 64 || name[0] == '.' || strings.Trim(name,
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != "" {
		return nil, fmt.Errorf("lock name %q: %w", name, ErrInvalidName)
	}
	f, err := lockFile(filepath.Join(m.root, "tern-"+name+".lock"), false)
	if err != nil {
		return nil, err
	}
	return func() { f.Close() }, nil
}

// Usage sums the sizes and counts of all messages in the Mailbox, for
// quotas: sizes come from ",S=" in file names, stat only when it is missing.
func (m *Mailbox) Usage() (bytes int64, messages int, err error) {
	names, err := m.folderNames()
	if err != nil {
		return 0, 0, err
	}
	dirs := []string{m.root}
	for _, n := range names {
		dirs = append(dirs, folderDir(m.root, n))
	}
	for _, d := range dirs {
		for _, sub := range []string{"cur", "new"} {
			p := filepath.Join(d, sub)
			ents, err := listMessages(p)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return 0, 0, err
			}
			for _, name := range ents {
				key, _ := splitName(name)
				size, ok := sizeFromKey(key)
				if !ok {
					fi, err := os.Lstat(filepath.Join(p, name))
					if err != nil {
						continue // removed meanwhile
					}
					size = fi.Size()
				}
				bytes += size
				messages++
			}
		}
	}
	return bytes, messages, nil
}
