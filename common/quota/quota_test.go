package quota

import "testing"

func TestParseRule(t *testing.T) {
	for _, tc := range []struct {
		rule string
		want int64
		ok   bool
	}{
		{"*:storage=1G", 1 << 30, true},
		{"*:storage=100M:messages=10", 100 << 20, true},
		{"*:bytes=512", 512, true},
		{"*:storage=2T", 2 << 40, true},
		{"*:storage=10MB", 10 << 20, true},
		{"*:storage=0", 0, true},
		{"*:messages=10", 0, false},
		{"INBOX:storage=1G", 0, false},
		{"*:storage=lots", 0, false},
	} {
		got, err := ParseRule(tc.rule)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseRule(%q) = %d, %v; want %d, ok=%v", tc.rule, got, err, tc.want, tc.ok)
		}
	}
}

func TestAllows(t *testing.T) {
	u := Usage{Used: 900, Limit: 1000}
	if !u.Allows(100) || u.Allows(101) {
		t.Errorf("900 of 1000: Allows(100) = %v, Allows(101) = %v; want true, false", u.Allows(100), u.Allows(101))
	}
	if !(Usage{Used: 5 << 30}).Allows(1 << 30) {
		t.Error("no limit refused a message")
	}
}
