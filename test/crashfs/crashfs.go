// Package crashfs is a test-only FUSE file system that simulates power
// loss. It passes every operation through to a backing directory (a
// go-fuse loopback) and records, beside it, what a disk would still hold
// if the power went off now: only what was made durable by fsync(2) or
// fdatasync(2). Cut freezes that record and returns it as an Image, which
// WriteTo turns into a directory tree: the disk as it is found after the
// cut, on which the programs under test are started again.
//
// # The rules modelled
//
// The model is the worst case that POSIX and Linux file systems (ext4 in
// its default data=ordered mode, XFS, btrfs) allow after a crash, so that
// a program correct here is correct on each of them:
//
//   - File data (and size) is durable only up to the file's last fsync or
//     fdatasync, which records a copy of its whole content. What was
//     written after it (or, for a file never synced, everything) may be
//     found after the cut as it was at the last fsync, as it was at the cut,
//     or torn: the size anywhere between the old and the new one, each
//     4 KiB block within the old size old or new (what was durable does not
//     turn into anything else), each block beyond it new or zeros
//     (allocated, data not written). A never-synced file may be empty.
//     ext4 data=ordered usually writes data before the metadata that names
//     it, but not for data written after the inode was committed, and not
//     with delayed allocation in every case: the famous zero-length files.
//   - A directory entry (create, mkdir, link, rename, unlink, rmdir) is
//     durable only once that directory is fsynced, which records the whole
//     listing. fsync of a file does not make its name durable (POSIX
//     fsync(2) says so: "it does not necessarily ensure that the entry in
//     the directory containing the file has also reached disk"), and fsync
//     of one directory says nothing about another (ext4 and XFS, with one
//     journal, commit every earlier change with any fsync; file systems that
//     log per inode, btrfs' log tree and ext4's fast commits, and NFS do
//     not, so the stricter rule is kept). Until a directory is fsynced, any
//     of its unsynced changes may still have reached the disk too (the
//     journal commits on its own every few seconds): after the cut each
//     directory holds its last fsynced listing, its listing at the cut, or a
//     mix, name by name.
//   - A rename is atomic, as ext4, XFS and btrfs make it: the fsync of
//     either directory makes both halves durable, and after the cut the file
//     has its old name or its new one, never neither and never both. In the
//     image: where the removal of a file's last durable name is kept, its
//     name at the cut is kept too; a file still linked at the cut keeps at
//     most as many names as it has links, its names at the cut first.
//   - Inodes keep their identity: a file with two names after the cut is
//     one file (a hard link), and a name that comes back because its
//     unlink was not durable names the file as it was last synced.
//   - What the tree held when it was mounted is durable (it is what the
//     previous cut left).
//
// An fsync that has not returned when the power is cut has not happened:
// from the cut on, fsync and fdatasync block until Release, and then fail
// with EIO, by which time the test has killed every process that could
// have acted on them. Everything else (writes, renames, reads) goes on
// reaching the backing directory, which no longer matters: the image was
// taken at the cut.
//
// Not modelled: metadata other than names, sizes and data (modes and
// times are taken from the cut), sync(2)/syncfs(2), and O_DIRECT.
//
// # Coverage of the steps
//
// Cut also reports in which state it found each regular file, by the
// directory it lives in (the last two components of its path): "dirty"
// (written since its last fsync, or never synced), "unnamed" (synced, but
// no durable directory entry names it yet: between the file's fsync and
// its directory's fsync), "durable", and "removed" (a durable name whose
// removal is not yet durable). Synced files without any name at the cut
// (an O_TMPFILE not linked yet, or a file since removed) are counted under
// "(unlinked)". A test that cuts at random points reports how many cuts
// found each state in each directory, which shows which steps of a write
// its cuts fell into.
package crashfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// FS is one mounted crash-simulating file system.
type FS struct {
	backing string
	mnt     string
	server  *fuse.Server
	done    chan struct{} // closed once unmounted and torn down

	// ns is held shared by every operation that changes a directory
	// entry and exclusively while a directory's listing is recorded and
	// while the image is taken, so that each sees a consistent listing.
	ns sync.RWMutex

	mu     sync.Mutex
	nodes  map[uint64]*inode // by backing inode number
	live   map[*node]bool    // nodes holding descriptors, closed at Unmount
	frozen bool
	thaw   chan struct{}
	stats  Stats

	// Trace, if set before use, gets one line per durability call and
	// per change of a directory entry (for debugging a failure).
	Trace func(format string, args ...any)
}

func (c *FS) trace(format string, args ...any) {
	if c.Trace != nil {
		c.Trace(format, args...)
	}
}

// Stats counts the durability calls seen.
type Stats struct {
	FileSyncs, DirSyncs int
}

// inode is what is durable of one backing inode. A descriptor (O_PATH) is
// held on every inode the model knows, so that the backing file system
// cannot give its number to another file while the model refers to it.
type inode struct {
	kind    uint32 // S_IFREG, S_IFDIR or S_IFLNK
	hold    int
	synced  bool              // data (files) or entries (dirs) recorded
	named   bool              // a durable directory entry has named it
	data    []byte            // durable content of a file
	target  string            // a symlink's target
	entries map[string]uint64 // durable listing of a directory
}

// Mount mounts a crash-simulating view of backing on mnt. Everything
// backing holds now is durable. It fails where FUSE is not available.
func Mount(backing, mnt string) (*FS, error) {
	c := &FS{backing: backing, mnt: mnt, nodes: map[uint64]*inode{}, live: map[*node]bool{}, thaw: make(chan struct{})}
	if err := c.scan(); err != nil {
		c.closeHolds()
		return nil, err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		c.closeHolds()
		return nil, err
	}
	lr := &fs.LoopbackRoot{Path: backing, Dev: uint64(st.Dev)}
	//lint:ignore SA1019 crashfs hooks node creation here; moving to NodeWrapChilder is a change of its own.
	lr.NewNode = func(r *fs.LoopbackRoot, parent *fs.Inode, name string, _ *syscall.Stat_t) fs.InodeEmbedder {
		n := &node{LoopbackNode: fs.LoopbackNode{RootData: r}, c: c, tmpFD: -1, hold: -1}
		if parent != nil && name != "" {
			p := filepath.Join(r.Path, parent.Path(r.RootNode.EmbeddedInode()), name)
			if fd, err := unix.Open(p, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
				n.hold = fd
				c.mu.Lock()
				c.live[n] = true
				c.mu.Unlock()
			}
		}
		return n
	}
	root := &node{LoopbackNode: fs.LoopbackNode{RootData: lr}, c: c, tmpFD: -1, hold: -1}
	lr.RootNode = root
	// Every change reaches the backing tree through this mount, so the
	// kernel's caches are never stale: long timeouts spare revalidating
	// lookups, which can race with a rename and answer ENOENT for a name
	// that a rename over it never removed.
	long := time.Hour
	srv, err := fs.Mount(mnt, root, &fs.Options{
		EntryTimeout:    &long,
		AttrTimeout:     &long,
		NegativeTimeout: &long,
		MountOptions: fuse.MountOptions{
			DirectMount: true,
			FsName:      "crashfs",
			Name:        "crashfs",
			AllowOther:  true,
			MaxWrite:    1 << 20,
		},
	})
	if err != nil {
		c.closeHolds()
		return nil, fmt.Errorf("mount crashfs on %s: %w", mnt, err)
	}
	c.server = srv
	return c, nil
}

// Stats returns the counts so far.
func (c *FS) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// scan records the whole backing tree as durable.
func (c *FS) scan() error {
	return filepath.WalkDir(c.backing, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		n, err := c.known(st.Ino, st.Mode&unix.S_IFMT, func() (int, error) {
			return unix.Open(p, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		})
		if err != nil {
			return err
		}
		n.synced, n.named = true, true
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			n.entries = map[string]uint64{}
			ents, err := listDir(p)
			if err != nil {
				return err
			}
			for name, e := range ents {
				n.entries[name] = e.ino
			}
		case unix.S_IFREG:
			if n.data, err = os.ReadFile(p); err != nil {
				return err
			}
		case unix.S_IFLNK:
			if n.target, err = os.Readlink(p); err != nil {
				return err
			}
		}
		return nil
	})
}

// known returns the record of inode ino, creating it (and its hold,
// opened by open) when new. c.mu is held or not needed (scan).
func (c *FS) known(ino uint64, kind uint32, open func() (int, error)) (*inode, error) {
	if n := c.nodes[ino]; n != nil {
		return n, nil
	}
	fd, err := open()
	if err != nil {
		return nil, err
	}
	n := &inode{kind: kind, hold: fd}
	c.nodes[ino] = n
	return n, nil
}

func (c *FS) closeHolds() {
	for _, n := range c.nodes {
		unix.Close(n.hold)
	}
	c.nodes = nil
}

// waitIfFrozen blocks a durability call made after the cut until
// Release, and reports whether it must fail. c.mu is held and is
// released while blocking.
func (c *FS) waitIfFrozen() bool {
	if !c.frozen {
		return false
	}
	c.mu.Unlock()
	<-c.thaw
	c.mu.Lock()
	return true
}

// syncFile records the content of the open file fd as durable.
func (c *FS) syncFile(fd int) syscall.Errno {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fs.ToErrno(err)
	}
	data, err := readFD(fd)
	if err != nil {
		return fs.ToErrno(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waitIfFrozen() {
		return syscall.EIO
	}
	kind := st.Mode & unix.S_IFMT
	n, err := c.known(st.Ino, kind, func() (int, error) { return reopen(fd, unix.O_PATH) })
	if err != nil {
		return fs.ToErrno(err)
	}
	if kind == unix.S_IFREG {
		n.data, n.synced = data, true
	}
	if c.Trace != nil {
		p, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
		c.trace("fsync ino %d %q %d bytes", st.Ino, p, len(data))
	}
	c.stats.FileSyncs++
	return 0
}

// syncDir records the listing of the open directory fd as durable.
func (c *FS) syncDir(fd int) syscall.Errno {
	c.ns.Lock()
	defer c.ns.Unlock()
	dir := "/proc/self/fd/" + strconv.Itoa(fd)
	ents, err := listDir(dir)
	if err != nil {
		return fs.ToErrno(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fs.ToErrno(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waitIfFrozen() {
		return syscall.EIO
	}
	n, err := c.known(st.Ino, unix.S_IFDIR, func() (int, error) { return reopen(fd, unix.O_PATH) })
	if err != nil {
		return fs.ToErrno(err)
	}
	entries := make(map[string]uint64, len(ents))
	for name, e := range ents {
		child, err := c.known(e.ino, e.kind, func() (int, error) {
			return unix.Openat(fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		})
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return fs.ToErrno(err)
		}
		child.named = true
		entries[name] = e.ino
	}
	n.entries, n.synced = entries, true
	c.stats.DirSyncs++
	if c.Trace != nil {
		p, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
		c.trace("fsyncdir ino %d %q %d entries", st.Ino, p, len(entries))
	}
	return 0
}

// Cut is the power cut: from now on no fsync succeeds, and the returned
// Image is what the disk holds. rng makes the worst-case choices (which
// unsynced changes reached the disk anyway, where a file is torn).
func (c *FS) Cut(rng *rand.Rand) (*Image, error) {
	c.ns.Lock()
	defer c.ns.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen = true
	return c.image(rng)
}

// Release lets the fsync calls blocked since the cut fail with EIO. Call
// it once the processes using the file system have been sent SIGKILL:
// a process blocked in a FUSE request cannot die until it is answered.
func (c *FS) Release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.thaw:
	default:
		close(c.thaw)
	}
}

// Unmount releases blocked calls and detaches the mount at once, so that
// the mount point can be used again. The server and the model are torn
// down in the background once the kernel drops the connection, which can
// take a while when a mount namespace of a killed process still refers to
// it; Wait waits for that.
func (c *FS) Unmount() error {
	c.Release()
	if c.done != nil {
		return nil
	}
	err := unix.Unmount(c.mnt, unix.MNT_DETACH)
	if err != nil {
		err = fmt.Errorf("crashfs: unmount %s: %w", c.mnt, err)
	}
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		c.server.Wait()
		c.mu.Lock()
		c.closeHolds()
		live := c.live
		c.live = map[*node]bool{}
		c.mu.Unlock()
		for n := range live {
			n.OnForget()
		}
	}()
	return err
}

// Wait waits until an unmounted file system is torn down, at most
// timeout, and reports whether it was.
func (c *FS) Wait(timeout time.Duration) bool {
	if c.done == nil {
		return true
	}
	select {
	case <-c.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// dirent is one entry of a backing directory.
type dirent struct {
	ino  uint64
	kind uint32
}

// listDir lists a directory with the inode numbers and types of its
// entries, without following anything.
func listDir(dir string) (map[string]dirent, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open dir %q: %w", dir, err)
	}
	defer unix.Close(fd)
	out := map[string]dirent{}
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return nil, fmt.Errorf("list %q: %w", dir, err)
		}
		if n <= 0 {
			return out, nil
		}
		for b := buf[:n]; len(b) > 0; {
			// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
			ino := nativeUint64(b[0:8])
			reclen := int(b[16]) | int(b[17])<<8
			typ := b[18]
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			b = b[reclen:]
			s := string(name)
			if s == "." || s == ".." {
				continue
			}
			var kind uint32
			switch typ {
			case unix.DT_DIR:
				kind = unix.S_IFDIR
			case unix.DT_LNK:
				kind = unix.S_IFLNK
			case unix.DT_REG:
				kind = unix.S_IFREG
			default:
				var st unix.Stat_t
				if err := unix.Fstatat(fd, s, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
					continue
				}
				kind = st.Mode & unix.S_IFMT
			}
			out[s] = dirent{ino: ino, kind: kind}
		}
	}
}

func nativeUint64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// reopen opens the file behind fd anew (through /proc, which works for a
// write-only or unnamed file too).
func reopen(fd int, flags int) (int, error) {
	return unix.Open("/proc/self/fd/"+strconv.Itoa(fd), flags|unix.O_CLOEXEC, 0)
}

// readFD reads the whole file behind fd through a new descriptor.
func readFD(fd int) ([]byte, error) {
	rfd, err := reopen(fd, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(rfd), "")
	defer f.Close()
	return io.ReadAll(f)
}

// node is a loopback node whose namespace changes are ordered against the
// recording of listings, and whose fsync records durability.
type node struct {
	fs.LoopbackNode
	c *FS
	// tmpFD names an O_TMPFILE file, which has no path in the backing
	// tree, until it is linked.
	tmpMu sync.Mutex
	tmpFD int
	// hold is an O_PATH descriptor of the backing inode, opened when the
	// node was looked up or created. go-fuse's loopback opens files by
	// path; a file the kernel has looked up and that a rename over its
	// name replaced in the meantime is opened through hold instead, as a
	// real file system would open the inode it has.
	hold int
}

var (
	_ fs.NodeFsyncer        = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.NodeLinker         = (*node)(nil)
	_ fs.NodeTmpfiler       = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeMknoder        = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRmdirer        = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeSymlinker      = (*node)(nil)
	_ fs.NodeOnForgetter    = (*node)(nil)
	_ fs.FileFsyncdirer     = (*dirHandle)(nil)
)

// Fsync records a file's content (for directories, FUSE sends FSYNCDIR to
// the dirHandle instead).
func (n *node) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	if lf, ok := f.(*file); ok {
		if fd, ok := lf.LoopbackFile.PassthroughFd(); ok {
			return n.c.syncFile(fd)
		}
	}
	return syscall.EBADF
}

// file is a loopback file handle that the kernel is not allowed to bypass
// (FUSE passthrough would take reads and writes past this process; the
// field hides LoopbackFile's PassthroughFd method from go-fuse).
type file struct {
	*fs.LoopbackFile
	PassthroughFd struct{}
}

func wrapFile(fh fs.FileHandle) fs.FileHandle {
	if lf, ok := fh.(*fs.LoopbackFile); ok {
		return &file{LoopbackFile: lf}
	}
	return fh
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	if errno == syscall.ENOENT && n.hold >= 0 {
		fd, err := reopen(n.hold, int(flags&^(syscall.O_APPEND|fuse.FMODE_EXEC|syscall.O_CREAT|syscall.O_EXCL)))
		if err != nil {
			return nil, 0, fs.ToErrno(err)
		}
		return wrapFile(fs.NewLoopbackFile(fd)), 0, 0
	}
	return wrapFile(fh), fl, errno
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	n.c.ns.RLock()
	defer n.c.ns.RUnlock()
	in, fh, fl, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	return in, wrapFile(fh), fl, errno
}

// Tmpfile creates an O_TMPFILE file and keeps a descriptor of it, so that
// Link can give it a name later (LINK carries no file handle).
func (n *node) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	in, fh, fl, errno := n.LoopbackNode.Tmpfile(ctx, flags, mode, out)
	if errno != 0 {
		return in, fh, fl, errno
	}
	if lf, ok := fh.(*fs.LoopbackFile); ok {
		if fd, ok := lf.PassthroughFd(); ok {
			if dup, err := reopen(fd, unix.O_PATH); err == nil {
				if child, ok := in.Operations().(*node); ok {
					child.tmpMu.Lock()
					child.tmpFD = dup
					child.tmpMu.Unlock()
				} else {
					unix.Close(dup)
				}
			}
		}
	}
	return in, wrapFile(fh), fl, errno
}

func (n *node) OnForget() {
	n.tmpMu.Lock()
	defer n.tmpMu.Unlock()
	if n.tmpFD >= 0 {
		unix.Close(n.tmpFD)
		n.tmpFD = -1
	}
	if n.hold >= 0 {
		unix.Close(n.hold)
		n.hold = -1
		n.c.mu.Lock()
		delete(n.c.live, n)
		n.c.mu.Unlock()
	}
}

func (n *node) backingPath() string {
	return filepath.Join(n.RootData.Path, n.Path(n.RootData.RootNode.EmbeddedInode()))
}

// Link links an existing file, or names an O_TMPFILE file (linkat(2)
// through /proc, as a program does with its own descriptor).
func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.c.ns.RLock()
	defer n.c.ns.RUnlock()
	t, ok := target.(*node)
	if !ok {
		return nil, syscall.EXDEV
	}
	t.tmpMu.Lock()
	tmp := t.tmpFD
	t.tmpMu.Unlock()
	if tmp < 0 {
		return n.LoopbackNode.Link(ctx, target, name, out)
	}
	p := filepath.Join(n.backingPath(), name)
	if err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(tmp), unix.AT_FDCWD, p, unix.AT_SYMLINK_FOLLOW); err != nil {
		return nil, fs.ToErrno(err)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return nil, fs.ToErrno(err)
	}
	out.Attr.FromStat(&st)
	return t.EmbeddedInode(), 0
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.c.ns.RLock()
	defer n.c.ns.RUnlock()
	return n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.c.ns.RLock()
	defer n.c.ns.RUnlock()
	return n.LoopbackNode.Mkdir(ctx, name, mode, out)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	n.c.ns.RLock()
	defer n.c.ns.RUnlock()
	return n.LoopbackNode.Rmdir(ctx, name)
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	n.c.ns.RLock()
	defer n.c.ns.RUnlock()
	n.c.trace("unlink %s/%s", n.backingPath(), name)
	return n.LoopbackNode.Unlink(ctx, name)
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	n.c.ns.RLock()
	defer n.c.ns.RUnlock()
	errno := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
	if np, ok := newParent.(*node); ok {
		n.c.trace("rename %s/%s -> %s/%s flags %d: %v", n.backingPath(), name, np.backingPath(), newName, flags, errno)
	}
	return errno
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	n.c.ns.RLock()
	defer n.c.ns.RUnlock()
	return n.LoopbackNode.Symlink(ctx, target, name, out)
}

// OpendirHandle opens a directory with a handle whose FSYNCDIR records
// its listing.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fd, err := unix.Open(n.backingPath(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, 0, fs.ToErrno(err)
	}
	ds, errno := fs.NewLoopbackDirStream(n.backingPath())
	if errno != 0 {
		unix.Close(fd)
		return nil, 0, errno
	}
	return &dirHandle{loopDir: ds.(loopDir), c: n.c, fd: fd}, 0, 0
}

// loopDir is what go-fuse's loopback directory stream implements.
type loopDir interface {
	fs.DirStream
	fs.FileReaddirenter
	fs.FileSeekdirer
	fs.FileReleasedirer
}

type dirHandle struct {
	loopDir
	c  *FS
	fd int
}

func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	return d.c.syncDir(d.fd)
}

func (d *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	unix.Close(d.fd)
	d.loopDir.Releasedir(ctx, flags)
}
