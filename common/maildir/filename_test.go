package maildir

import (
	"sort"
	"strings"
	"testing"
)

func TestArrivalOrder(t *testing.T) {
	keys := []string{
		"1700000001.M5P1Q1R00.h,S=1",
		"1700000000.M999999P1Q1R00.h,S=1",
		"1700000000.M10P2Q1R00.h,S=1",
		"1700000000.M9P3Q1R00.h,S=1",
		"999999999.M1P1Q1R00.h,S=1",
		"1700000000.12345_1.procmail.host",
	}
	sort.Slice(keys, func(i, j int) bool { return arrivalLess(keys[i], keys[j]) })
	want := []string{
		"999999999.M1P1Q1R00.h,S=1",
		"1700000000.12345_1.procmail.host",
		"1700000000.M9P3Q1R00.h,S=1",
		"1700000000.M10P2Q1R00.h,S=1",
		"1700000000.M999999P1Q1R00.h,S=1",
		"1700000001.M5P1Q1R00.h,S=1",
	}
	for i := range want {
		if keys[i] != want[i] {
			t.Fatalf("order:\n%v\nwant\n%v", keys, want)
		}
	}
}

func TestDeliverRecordsWireSize(t *testing.T) {
	dir := t.TempDir()
	// Three bare LFs and one CRLF: stored with four LFs (21 bytes), four
	// bytes more on the wire.
	key, size, err := Deliver(dir, strings.NewReader("Subject: x\n\nbody\r\nend\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	w, ok := wireSizeFromKey(key)
	if !ok || size != 21 || w != 25 {
		t.Fatalf("key %q size %d wire %d %v", key, size, w, ok)
	}
	m := Message{Key: key}
	if got, ok := m.WireSize(); !ok || got != 25 {
		t.Errorf("WireSize = %d %v", got, ok)
	}
}
