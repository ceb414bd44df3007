package crashfs

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// Image is the disk as found after a cut.
type Image struct {
	entries []imageEntry
	// Coverage counts the regular files found in each state at the cut,
	// by area (the last two components of their directory's path) and
	// state ("dirty", "unnamed", "durable", "removed"; see the package
	// doc).
	Coverage map[string]map[string]int
	// Torn is how many files the image holds torn or reverted (content
	// other than their last fsync and other than at the cut); Reverted
	// how many directories lost unsynced entries; Kept how many unsynced
	// entries reached the disk anyway.
	Torn, Reverted, Kept int
}

type imageEntry struct {
	path   string // relative
	kind   uint32
	data   []byte
	target string // symlink target
	linkTo string // a hard link to this earlier path
	mode   uint32
	mtime  time.Time
}

// curTree is the backing tree as it is at the cut.
type curTree struct {
	dirs  map[uint64]map[string]dirent
	paths map[uint64]string // one current path of each inode
}

func (c *FS) current() (*curTree, error) {
	t := &curTree{dirs: map[uint64]map[string]dirent{}, paths: map[uint64]string{}}
	var walk func(rel string, ino uint64) error
	walk = func(rel string, ino uint64) error {
		ents, err := listDir(filepath.Join(c.backing, rel))
		if err != nil {
			return err
		}
		t.dirs[ino] = ents
		for name, e := range ents {
			p := filepath.Join(rel, name)
			if _, seen := t.paths[e.ino]; !seen {
				t.paths[e.ino] = p
			}
			if e.kind == unix.S_IFDIR {
				if err := walk(p, e.ino); err != nil {
					return err
				}
			}
		}
		return nil
	}
	var st unix.Stat_t
	if err := unix.Stat(c.backing, &st); err != nil {
		return nil, err
	}
	t.paths[st.Ino] = "."
	return t, walk(".", st.Ino)
}

func area(dir string) string {
	if dir == "." {
		return "/"
	}
	parent := filepath.Base(filepath.Dir(dir))
	if parent == "." {
		return filepath.Base(dir)
	}
	return parent + "/" + filepath.Base(dir)
}

// image builds the Image; c.ns and c.mu are held.
func (c *FS) image(rng *rand.Rand) (*Image, error) {
	cur, err := c.current()
	if err != nil {
		return nil, fmt.Errorf("crashfs: read the tree at the cut: %w", err)
	}
	img := &Image{Coverage: map[string]map[string]int{}}
	count := func(a, state string) {
		m := img.Coverage[a]
		if m == nil {
			m = map[string]int{}
			img.Coverage[a] = m
		}
		m[state]++
	}

	// Coverage: the state of every regular file.
	durNamed := map[uint64]bool{}
	for dino, n := range c.nodes {
		if n.kind != unix.S_IFDIR || !n.synced {
			continue
		}
		curEnts := cur.dirs[dino]
		for name, ino := range n.entries {
			durNamed[ino] = true
			if e, ok := curEnts[name]; (!ok || e.ino != ino) && c.nodes[ino] != nil && c.nodes[ino].kind == unix.S_IFREG {
				if p, ok := cur.paths[dino]; ok {
					count(area(p), "removed")
				}
			}
		}
	}
	contents := map[uint64][]byte{}
	currentData := func(ino uint64) ([]byte, bool) {
		if b, ok := contents[ino]; ok {
			return b, b != nil
		}
		var b []byte
		if p, ok := cur.paths[ino]; ok {
			b, _ = os.ReadFile(filepath.Join(c.backing, p))
		} else if n := c.nodes[ino]; n != nil {
			b, _ = readFD(n.hold)
		}
		contents[ino] = b
		return b, b != nil
	}
	for ino, p := range cur.paths {
		var st unix.Stat_t
		if unix.Lstat(filepath.Join(c.backing, p), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		a := area(filepath.Dir(p))
		n := c.nodes[ino]
		k, _ := currentData(ino)
		switch {
		case n == nil || !n.synced || !bytes.Equal(n.data, k):
			count(a, "dirty")
		case !durNamed[ino]:
			count(a, "unnamed")
		default:
			count(a, "durable")
		}
	}
	for ino, n := range c.nodes {
		if _, named := cur.paths[ino]; !named && n.kind == unix.S_IFREG && n.synced && !durNamed[ino] {
			count("(unlinked)", "unnamed")
		}
	}

	// The image. First each directory's listing as the cut leaves it,
	// chosen from its last fsynced listing and its listing at the cut.
	var st unix.Stat_t
	if err := unix.Stat(c.backing, &st); err != nil {
		return nil, err
	}
	rootIno := st.Ino
	chosen := map[uint64]map[string]uint64{}
	present := map[uint64]bool{}
	kindOf := func(ino uint64, d map[string]dirent, name string) uint32 {
		if n := c.nodes[ino]; n != nil {
			return n.kind
		}
		if e, ok := d[name]; ok && e.ino == ino {
			return e.kind
		}
		return 0
	}
	var decide func(dino uint64)
	decide = func(dino uint64) {
		var dur map[string]uint64
		if n := c.nodes[dino]; n != nil && n.synced {
			dur = n.entries
		}
		curEnts := cur.dirs[dino]
		mode := rng.IntN(4) // 0, 1: as last synced; 2: as at the cut; 3: a mix
		names := map[string]bool{}
		for name := range dur {
			names[name] = true
		}
		for name := range curEnts {
			names[name] = true
		}
		sorted := make([]string, 0, len(names))
		for name := range names {
			sorted = append(sorted, name)
		}
		sort.Strings(sorted)
		list := map[string]uint64{}
		chosen[dino] = list
		reverted := false
		for _, name := range sorted {
			d, inD := dur[name]
			ce, inC := curEnts[name]
			useCur := mode == 2 || (mode == 3 && rng.IntN(2) == 0)
			ino, ok := d, inD
			if useCur {
				ino, ok = ce.ino, inC
			}
			if inD != inC || (inD && d != ce.ino) {
				if useCur {
					img.Kept++
				} else {
					reverted = true
				}
			}
			if !ok {
				continue
			}
			list[name] = ino
			present[ino] = true
			if kindOf(ino, curEnts, name) == unix.S_IFDIR && chosen[ino] == nil {
				decide(ino)
			}
		}
		if reverted {
			img.Reverted++
		}
	}
	decide(rootIno)
	// A file that is still linked never loses every name: where the cut
	// keeps the removal of its last durable name (the source half of a
	// rename, made durable by an fsync of the source directory), it keeps
	// its name at the cut. A rename is atomic in ext4, XFS and btrfs: the
	// fsync of either directory makes both halves durable.
	dirAt := map[string]uint64{}
	for ino, p := range cur.paths {
		if e, ok := cur.dirs[ino]; ok && e != nil {
			dirAt[p] = ino
		}
	}
	for ino, n := range c.nodes {
		p, linked := cur.paths[ino]
		if !n.named || present[ino] || !linked || ino == rootIno {
			continue
		}
		list := chosen[dirAt[filepath.Dir(p)]]
		if list == nil {
			continue
		}
		if _, taken := list[filepath.Base(p)]; taken {
			continue
		}
		list[filepath.Base(p)] = ino
		present[ino] = true
		img.Kept++
		if n.kind == unix.S_IFDIR && chosen[ino] == nil {
			decide(ino)
		}
	}

	// A rename is atomic too: a file still linked at the cut has at most
	// as many names after it as it has links, its names at the cut first
	// (both the old and the new name of one rename cannot survive).
	type place struct {
		dir  uint64
		name string
	}
	names := map[uint64][]place{}
	for dino, list := range chosen {
		for name, ino := range list {
			names[ino] = append(names[ino], place{dino, name})
		}
	}
	for ino, ps := range names {
		p, linked := cur.paths[ino]
		if len(ps) < 2 || !linked {
			continue
		}
		var st unix.Stat_t
		if unix.Lstat(filepath.Join(c.backing, p), &st) != nil || st.Mode&unix.S_IFMT == unix.S_IFDIR {
			continue
		}
		sort.Slice(ps, func(i, j int) bool {
			ci := cur.dirs[ps[i].dir][ps[i].name].ino == ino
			cj := cur.dirs[ps[j].dir][ps[j].name].ino == ino
			if ci != cj {
				return ci
			}
			return ps[i].name < ps[j].name
		})
		for _, extra := range ps[min(len(ps), int(st.Nlink)):] {
			delete(chosen[extra.dir], extra.name)
		}
	}

	// Then the entries, from the root.
	firstPath := map[uint64]string{}
	visited := map[uint64]bool{}
	var walk func(dino uint64, rel string)
	walk = func(dino uint64, rel string) {
		visited[dino] = true
		list := chosen[dino]
		sorted := make([]string, 0, len(list))
		for name := range list {
			sorted = append(sorted, name)
		}
		sort.Strings(sorted)
		curEnts := cur.dirs[dino]
		for _, name := range sorted {
			ino := list[name]
			kind := kindOf(ino, curEnts, name)
			p := filepath.Join(rel, name)
			var st unix.Stat_t
			var haveSt bool
			if cp, ok := cur.paths[ino]; ok {
				haveSt = unix.Lstat(filepath.Join(c.backing, cp), &st) == nil
			} else if n := c.nodes[ino]; n != nil {
				haveSt = unix.Fstat(n.hold, &st) == nil
			}
			e := imageEntry{path: p, kind: kind, mode: 0o600}
			if haveSt {
				e.mode = st.Mode & 0o7777
				e.mtime = time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
			}
			switch kind {
			case unix.S_IFDIR:
				if visited[ino] {
					continue // a directory renamed without both sides synced: keep one name
				}
				if !haveSt {
					e.mode = 0o700
				}
				img.entries = append(img.entries, e)
				walk(ino, p)
			case unix.S_IFREG:
				if fp, ok := firstPath[ino]; ok {
					e.linkTo = fp
					img.entries = append(img.entries, e)
					continue
				}
				firstPath[ino] = p
				n := c.nodes[ino]
				k, haveK := currentData(ino)
				var data []byte
				switch {
				case n != nil && n.synced && (!haveK || bytes.Equal(n.data, k)):
					data = n.data
				case n != nil && n.synced:
					switch rng.IntN(4) {
					case 0, 1:
						data = n.data
					case 2:
						data = k
					default:
						data = tear(rng, n.data, k)
					}
					if !bytes.Equal(data, k) {
						img.Torn++
					}
				default:
					switch rng.IntN(3) {
					case 0:
						data = nil
					case 1:
						data = k
					default:
						data = tear(rng, nil, k)
					}
					if !bytes.Equal(data, k) {
						img.Torn++
					}
				}
				e.data = data
				img.entries = append(img.entries, e)
			case unix.S_IFLNK:
				if n := c.nodes[ino]; n != nil && n.synced {
					e.target = n.target
				} else if cp, ok := cur.paths[ino]; ok {
					e.target, _ = os.Readlink(filepath.Join(c.backing, cp))
				}
				img.entries = append(img.entries, e)
			}
		}
	}
	walk(rootIno, ".")
	return img, nil
}

// tear returns what a disk may hold of a file written from old to new
// without an fsync: a size between the two; each 4 KiB block within the
// old size the old or the new one (an overwrite in place lands or not,
// but what was durable never turns into something else), and each block
// beyond it the new one or zeros (allocated, its data not written).
func tear(rng *rand.Rand, old, new []byte) []byte {
	lo, hi := len(old), len(new)
	if lo > hi {
		lo, hi = hi, lo
	}
	size := lo + rng.IntN(hi-lo+1)
	out := make([]byte, size)
	const block = 4096
	for off := 0; off < size; off += block {
		end := min(off+block, size)
		src := new
		if rng.IntN(2) == 0 {
			src = old // beyond len(old): zeros
		}
		if off < len(src) {
			copy(out[off:end], src[off:min(end, len(src))])
		}
	}
	return out
}

// WriteTo creates the image in dir, which must exist and be empty.
func (img *Image) WriteTo(dir string) error {
	for _, e := range img.entries {
		p := filepath.Join(dir, e.path)
		var err error
		switch {
		case e.kind == unix.S_IFDIR:
			err = os.Mkdir(p, os.FileMode(e.mode)&os.ModePerm)
		case e.linkTo != "":
			err = os.Link(filepath.Join(dir, e.linkTo), p)
		case e.kind == unix.S_IFREG:
			err = os.WriteFile(p, e.data, os.FileMode(e.mode)&os.ModePerm)
		case e.kind == unix.S_IFLNK:
			err = os.Symlink(e.target, p)
		}
		if err != nil {
			return fmt.Errorf("crashfs: write image: %w", err)
		}
		if e.kind == unix.S_IFREG && e.linkTo == "" && !e.mtime.IsZero() {
			os.Chtimes(p, e.mtime, e.mtime)
		}
	}
	for i := len(img.entries) - 1; i >= 0; i-- {
		if e := img.entries[i]; e.kind == unix.S_IFDIR && !e.mtime.IsZero() {
			os.Chtimes(filepath.Join(dir, e.path), e.mtime, e.mtime)
		}
	}
	return nil
}
