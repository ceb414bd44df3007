package maildir

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestMetadataStore(t *testing.T) {
	m := openTest(t)
	lim := MetadataLimits{MaxSize: 10, MaxEntries: 2, MaxTotal: 100}
	if err := m.Create("Work"); err != nil {
		t.Fatal(err)
	}
	if err := m.SetMetadata("Work", map[string][]byte{"/private/a": []byte("x\x00y\n"), "/shared/b": []byte("")}, lim); err != nil {
		t.Fatal(err)
	}
	got, err := m.Metadata("Work")
	if err != nil || !reflect.DeepEqual(got, map[string][]byte{"/private/a": []byte("x\x00y\n"), "/shared/b": {}}) {
		t.Fatalf("Metadata: %q %v", got, err)
	}
	for _, c := range []struct {
		set  map[string][]byte
		want error
	}{
		{map[string][]byte{"/private/c": []byte("1")}, ErrMetadataTooMany},
		{map[string][]byte{"/private/a": bytes.Repeat([]byte("z"), 11)}, ErrMetadataTooLarge},
		{map[string][]byte{"/Private/a": []byte("1")}, ErrInvalidEntry},
		{map[string][]byte{"/other/a": []byte("1")}, ErrInvalidEntry},
	} {
		if err := m.SetMetadata("Work", c.set, lim); !errors.Is(err, c.want) {
			t.Errorf("SetMetadata(%q): %v, want %v", c.set, err, c.want)
		}
	}
	// The total spans the server and every folder.
	big := MetadataLimits{MaxSize: 100, MaxEntries: 10, MaxTotal: 80}
	if err := m.SetMetadata("", map[string][]byte{"/shared/x": bytes.Repeat([]byte("s"), 30)}, big); err != nil {
		t.Fatal(err)
	}
	if err := m.SetMetadata("INBOX", map[string][]byte{"/shared/y": bytes.Repeat([]byte("s"), 20)}, big); !errors.Is(err, ErrMetadataTooMany) {
		t.Errorf("past the total: %v", err)
	}
	if _, err := m.Metadata("Nowhere"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing folder: %v", err)
	}
	if _, err := m.Metadata("../x"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("escaping name: %v", err)
	}
	// A damaged file reads as empty and is replaced at the next change.
	p := filepath.Join(m.Root(), ".Work", metadataName)
	os.WriteFile(p, []byte("garbage"), 0o600)
	if got, err := m.Metadata("Work"); err != nil || len(got) != 0 {
		t.Fatalf("damaged file: %q %v", got, err)
	}
	if err := m.SetMetadata("Work", map[string][]byte{"/private/a": []byte("1")}, lim); err != nil {
		t.Fatal(err)
	}
	// Removing the last entry removes the file.
	if err := m.SetMetadata("Work", map[string][]byte{"/private/a": nil}, lim); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty metadata file left: %v", err)
	}
}

func FuzzParseMetadata(f *testing.F) {
	f.Add([]byte("tern-metadata 1\n/private/a eA==\n.\n"))
	f.Add([]byte("tern-metadata 1\n.\n"))
	f.Add([]byte("tern-metadata 1\n/private/a *\n.\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := parseMetadata(data)
		if err != nil {
			return
		}
		for k := range e {
			if !ValidEntryName(k) {
				t.Fatalf("accepted entry %q", k)
			}
		}
		again, err := parseMetadata(marshalMetadata(e))
		if err != nil || !reflect.DeepEqual(again, e) {
			t.Fatalf("round trip: %q %v", again, err)
		}
	})
}
