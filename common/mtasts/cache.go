package mtasts

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"tern/common/safeio"
)

// Cache keeps fetched policies on disk, one file per domain, so that a
// restart neither loses them nor needs the policy servers (RFC 8461 5.1:
// a cached, unexpired policy stays in force while no new one can be had).
type Cache struct {
	dir string
}

// Entry is one cached policy.
type Entry struct {
	Policy  *Policy
	ID      string    // the TXT record's id when it was fetched
	Fetched time.Time // when
}

// Expires is when the entry stops being usable: max_age after the fetch.
func (e *Entry) Expires() time.Time { return e.Fetched.Add(e.Policy.MaxAge) }

// OpenCache opens (creating) the cache directory.
func OpenCache(dir string) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("mtasts: cache: %w", err)
	}
	return &Cache{dir: dir}, nil
}

// file is the on-disk form: the policy as its document, so that an
// administrator can read it.
type file struct {
	Domain  string    `json:"domain"`
	ID      string    `json:"id"`
	Fetched time.Time `json:"fetched"`
	Policy  string    `json:"policy"`
}

func (c *Cache) path(domain string) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(domain, "."))
	if d == "" || strings.ContainsAny(d, "/\\\x00") || strings.HasPrefix(d, ".") {
		return "", fmt.Errorf("mtasts: cache: bad domain %q", domain)
	}
	return filepath.Join(c.dir, d), nil
}

// Get returns the cached entry of domain, expired or not, or nil.
func (c *Cache) Get(domain string) (*Entry, error) {
	p, err := c.path(domain)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mtasts: cache: %w", err)
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("mtasts: cache %s: %w", p, err)
	}
	pol, err := Parse([]byte(f.Policy))
	if err != nil {
		return nil, fmt.Errorf("mtasts: cache %s: %w", p, err)
	}
	return &Entry{Policy: pol, ID: f.ID, Fetched: f.Fetched}, nil
}

// Put stores the entry of domain durably: temp file, fsync, rename, fsync
// of the directory.
func (c *Cache) Put(domain string, e *Entry) error {
	p, err := c.path(domain)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(file{Domain: domain, ID: e.ID, Fetched: e.Fetched.UTC(), Policy: e.Policy.String()}, "", "  ")
	if err != nil {
		return err
	}
	if err := safeio.WriteFile(p, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("mtasts: cache: %w", err)
	}
	return nil
}
