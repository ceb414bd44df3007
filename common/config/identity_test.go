package config

import (
	"os/user"
	"strings"
	"testing"
)

func TestUserAndGroupKeys(t *testing.T) {
	if _, err := user.Lookup("nobody"); err != nil {
		t.Skip("no user nobody on this system")
	}
	c, err := Parse("t.toml", []byte("domains = [\"example.test\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.User != "" || c.Group != "" {
		t.Errorf("default user/group = %q/%q, want empty (keep the identity)", c.User, c.Group)
	}
	if _, err := Parse("t.toml", []byte("domains = [\"example.test\"]\nuser = \"nobody\"\n")); err != nil {
		t.Errorf("user = nobody: %v", err)
	}
	for _, tc := range []struct{ src, want string }{
		{`user = "no-such-user-tern"`, `t.toml:2: user: no such user "no-such-user-tern"`},
		{`user = "root"`, `t.toml:2: user: "root" is root`},
		{`user = "0"`, `t.toml:2: user: "0" is root`},
		{"user = \"nobody\"\ngroup = \"no-such-group-tern\"", `t.toml:3: group: no such group "no-such-group-tern"`},
		{`group = "nogroup"`, `t.toml:2: group: needs user`},
		{`user = " nobody"`, `user: " nobody" has leading or trailing space`},
	} {
		_, err := Parse("t.toml", []byte("domains = [\"example.test\"]\n"+tc.src+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.src, err, tc.want)
		}
	}
}
func TestPlainLocalPart(t *testing.T) {
	for s, want := range map[string]bool{
		"root": true, "www-data": true, "john.doe": true, "a_b+c": true,
		"": false, ".x": false, "x.": false, "a..b": false, "a b": false, "a@b": false,
		"a<b": false, "é": false, strings.Repeat("a", 65): false,
	} {
		if got := plainLocalPart(s); got != want {
			t.Errorf("plainLocalPart(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestLocalLogin(t *testing.T) {
	if got := LocalLogin(0); got != "root" {
		t.Errorf("LocalLogin(0) = %q, want root", got)
	}
	// A uid with no name in the user database.
	if got := LocalLogin(4000000000); got != "uid4000000000" {
		t.Errorf("LocalLogin(unknown) = %q", got)
	}
}
