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
