package maildir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Deliver durably writes one message into the Maildir at dir, creating
// dir/{cur,new,tmp} if missing: tmp/ → write → fsync → link into new/ (or
// into cur/ with ":2,FLAGS" when flags are given) → fsync of the directory.
// It takes no index lock (UIDs are assigned at the next Sync), except to give
// a letter to a keyword that has none yet. It returns the key (the file
// name's unique part, "time.unique.host,S=size,W=wiresize") and the size written. On
// any error nothing is left in new/ or cur/.
func Deliver(dir string, r io.Reader, flags []string) (key string, size int64, err error) {
	nf, err := normaliseFlags(flags)
	if err != nil {
		return "", 0, err
	}
	if err := ensureMaildir(dir); err != nil {
		return "", 0, err
	}
	targetOf := func(key string) (string, error) {
		if len(nf) == 0 {
			return filepath.Join(dir, "new", key), nil
		}
		kw, err := deliveryKeywords(dir, nf)
		if err != nil {
			return "", err
		}
		return filepath.Join(dir, "cur", key+buildInfo(nf, kw)), nil
	}
	var target string
	var targetErr error
	key, size, ok, err := deliverUnnamed(dir, r, func(key string) string {
		target, targetErr = targetOf(key)
		if targetErr != nil {
			// A name linkat cannot create: the delivery fails below
			// with targetErr, and the unnamed file just vanishes.
			return filepath.Join(dir, "tmp", "no", "such", "dir")
		}
		return target
	})
	if targetErr != nil {
		return "", 0, targetErr
	}
	if ok {
		if err != nil {
			return "", 0, err
		}
		if err := syncDirShared(filepath.Dir(target)); err != nil {
			os.Remove(target)
			return "", 0, err
		}
		return key, size, nil
	}
	tmp, size, wire, err := tmpWrite(dir, r, time.Time{})
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(tmp)
	key = sizedKey(filepath.Base(tmp), size, wire)
	if target, err = targetOf(key); err != nil {
		return "", 0, err
	}
	// link(2) never replaces an existing name (qmail's rule); rename is
	// the fallback for file systems without hard links.
	if err := os.Link(tmp, target); err != nil {
		if errors.Is(err, os.ErrExist) {
			return "", 0, fmt.Errorf("deliver to %q: name collision: %w", target, err)
		}
		if err := renameNoReplace(tmp, target); err != nil {
			return "", 0, fmt.Errorf("deliver to %q: %w", target, err)
		}
	}
	if err := syncDirShared(filepath.Dir(target)); err != nil {
		os.Remove(target)
		return "", 0, err
	}
	return key, size, nil
}

// deliveryKeywords returns the letter table for delivering a message with
// flags; only when a keyword has no letter yet does it take the index lock to
// add one.
func deliveryKeywords(dir string, flags []string) ([]string, error) {
	kw, err := readKeywords(dir)
	if err != nil {
		return nil, fmt.Errorf("read keywords: %w", err)
	}
	_, want := splitFlags(flags)
	if _, changed := addKeywords(append([]string(nil), kw...), want); !changed {
		return kw, nil
	}
	st := stateFor(dir)
	st.mu.Lock()
	defer st.mu.Unlock()
	release, err := st.lockIndex()
	if err != nil {
		return nil, err
	}
	defer release()
	kw, _, err = st.letters(flags)
	return kw, err
}
