package maildir

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseIndex: the index parser never panics, and whatever it accepts
// satisfies the index invariants and survives a write/read round trip.
func FuzzParseIndex(f *testing.F) {
	f.Add([]byte("tern-index 1 V1700000000 N3 M5 G2 C2\n1 2 10 1700000000000000000 1700000000.M1P2Q3R00.host,S=10 :2,S $Label1\n2 5 3 0 k%20ey :2,a%25 a%20b\n.\n"))
	f.Add([]byte("tern-index 1 V1 N1 M1 G0 C0\n.\n"))
	f.Add([]byte("tern-index 1 V1 N2 M1 G0 C1\n1 1 0 0 a/b -\n.\n"))
	f.Add([]byte("tern-index 1 V1 N2 M1 G0 C1\n1 1 0 0 key - b a\n.\n"))
	f.Add([]byte("tern-index 1 V1 N2 M1 G0 C1\n1 1 0 0 key -\n"))
	f.Add([]byte("tern-index 1 V1 N3 M5 G2 C1 F2\n2 5 3 0 key :2,S\n.\n"))
	f.Add([]byte("tern-index 1 V1 N1 M1 G0 C0 F1\n.\n"))
	f.Add([]byte("tern-index 1 V1 N2 M1 G0 C0 F3\n.\n"))
	f.Add([]byte("tern-index 2 V1 N3 M5 G2 C2 F2\n1 2 10 1700000000000000000 1700000001 - key :2,S\n2 5 3 0 0 Mabc-_1 k2 -\n.\n"))
	f.Add([]byte("tern-index 2 V1 N2 M1 G0 C1 F1\n1 1 0 0 -5 M+ key -\n.\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		x, err := parseIndex(data)
		if err != nil {
			return
		}
		keys := map[string]bool{}
		for i, e := range x.entries {
			if e.uid == 0 || e.uid >= x.uidNext || (i > 0 && e.uid <= x.entries[i-1].uid) || e.modseq > x.highestModSeq {
				t.Fatalf("accepted an index breaking the invariants: %+v", e)
			}
			if keys[e.key] || !validKey(e.key) || !validInfo(e.info) {
				t.Fatalf("accepted key %q info %q", e.key, e.info)
			}
			keys[e.key] = true
		}
		y, err := parseIndex(x.marshal())
		if err != nil {
			t.Fatalf("re-parse of marshalled index: %v", err)
		}
		// Whatever version was read, the current one is written.
		x.version = indexVersion
		if !reflect.DeepEqual(x, y) {
			t.Fatalf("round trip changed the index:\n%+v\n%+v", x, y)
		}
	})
}

// FuzzFileName: parsing a Maildir file name never panics; flags built from
// the parsed flags give a name that parses to the same flags.
func FuzzFileName(f *testing.F) {
	for _, s := range []string{
		"1700000000.M1P2Q3R4.host,S=1234:2,FRSab",
		"1700000000.M1P2.host,S=12,W=14:2,",
		"1276528487.M364837P9451.kurkku:2,T",
		"x,S=-1:2,zz",
		"x,S=99999999999999999999",
		"a:1,experimental",
		"key:2,PDS",
	} {
		f.Add(s)
	}
	kw := []string{"$Label1", "project", "", "later"}
	f.Fuzz(func(t *testing.T, name string) {
		key, info := splitName(name)
		if key+info != name || strings.Contains(key, ":") {
			t.Fatalf("splitName(%q) = %q, %q", name, key, info)
		}
		if n, ok := sizeFromKey(key); ok && n < 0 {
			t.Fatalf("negative size from %q", key)
		}
		sys, letterKW := flagsFromInfo(info, kw)
		flags, err := normaliseFlags(append(sys, letterKW...))
		if err != nil {
			t.Fatalf("flags from %q do not normalise: %v", name, err)
		}
		info2 := buildInfo(flags, kw)
		sys2, kw2 := flagsFromInfo(info2, kw)
		flags2, _ := normaliseFlags(append(sys2, kw2...))
		if !reflect.DeepEqual(flags, flags2) {
			t.Fatalf("%q: flags %v rebuilt as %q -> %v", name, flags, info2, flags2)
		}
	})
}

// FuzzMUTF7: decoding never panics; accepted input is canonical (encodes
// back to itself); any UTF-8 string round-trips through the encoder.
func FuzzMUTF7(f *testing.F) {
	for _, s := range []string{"INBOX", "&-", "&ANw-n&AO8-", "&ZeVnLIqe-", "&2D3eAA-", "&", "&AGE-", "&2D0-", "日本語", "a&b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := DecodeMUTF7(s); err == nil {
			if !utf8.ValidString(d) {
				t.Fatalf("DecodeMUTF7(%q) gave invalid UTF-8", s)
			}
			if e := EncodeMUTF7(d); e != s {
				t.Fatalf("DecodeMUTF7(%q) = %q, which encodes as %q", s, d, e)
			}
		}
		if utf8.ValidString(s) {
			d, err := DecodeMUTF7(EncodeMUTF7(s))
			if err != nil || d != s {
				t.Fatalf("round trip of %q: %q, %v", s, d, err)
			}
		}
	})
}

// FuzzFolderName: a name that validates maps to one directory directly
// under the root, which decodes back to the same name.
func FuzzFolderName(f *testing.F) {
	for _, s := range hostileNames {
		f.Add(s)
	}
	f.Add("Archive.2024")
	f.Add("Ünï.Sub")
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateName(name) != nil || IsInbox(name) {
			return
		}
		dir := encodeDirName(name)
		if strings.ContainsAny(dir, "/\x00") || dir == "." || dir == ".." || len(dir) > nameMax {
			t.Fatalf("name %q gives directory %q", name, dir)
		}
		back, ok := decodeDirName(dir)
		if !ok || back != name {
			t.Fatalf("directory %q of %q decodes to %q, %v", dir, name, back, ok)
		}
	})
}

// FuzzDovecotFiles: dovecot-uidlist, dovecot-keywords and subscriptions
// come from other programs; their parsers never panic and never accept a
// file name that could leave cur/.
func FuzzDovecotFiles(f *testing.F) {
	f.Add([]byte("3 V1234 N5 G00\n1 :a.b.c,S=1\n2 W3 :d.e.f\n"))
	f.Add([]byte("1 1234 5\n1 a.b.c:2,S\n"))
	f.Add([]byte("0 $Label1\n1 project\n27 toofar\n"))
	f.Add([]byte("V\t2\n\n&ANw-n&AO8-\tsub\nINBOX\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if u, err := parseUIDList(data); err == nil {
			for k, uid := range u.uids {
				if !validKey(k) || uid == 0 || uid >= u.uidNext {
					t.Fatalf("uidlist accepted %q -> %d (next %d)", k, uid, u.uidNext)
				}
			}
		}
		kw := parseKeywords(data)
		if len(kw) > maxKeywordLetters {
			t.Fatalf("%d keyword letters", len(kw))
		}
		for _, n := range parseSubscriptions(data) {
			if ValidateName(n) != nil {
				t.Fatalf("subscription %q is not a valid name", n)
			}
		}
	})
}
