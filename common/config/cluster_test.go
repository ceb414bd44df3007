package config

import (
	"strings"
	"testing"
)

func TestCluster(t *testing.T) {
	base := "domains = [\"example.test\"]\n[cluster]\n"
	c, err := Parse("t.toml", []byte(base))
	if err != nil || c.Clustered() || c.Cluster.IMAPPort != 1143 || c.Cluster.ConnectTimeout.D().String() != "3s" {
		t.Fatalf("defaults: %+v %v", c.Cluster, err)
	}
	good := "hosts = [\"10.0.0.1\", \"10.0.0.2\"]\nself = \"10.0.0.1\"\nsecret = \"/etc/tern/cluster.secret\"\n"
	if c, err := Parse("t.toml", []byte(base+good)); err != nil || !c.Clustered() {
		t.Fatalf("good cluster: %v", err)
	}
	for src, want := range map[string]string{
		"hosts = [\"10.0.0.1\"]\nsecret = \"/s\"":                      "cluster.self",
		"hosts = [\"10.0.0.1\"]\nself = \"10.0.0.2\"\nsecret = \"/s\"": "cluster.self",
		"hosts = [\"mail2\"]\nself = \"mail2\"\nsecret = \"/s\"":       "cluster.hosts",
		"hosts = [\"10.0.0.1\"]\nself = \"10.0.0.1\"":                  "cluster.secret",
		"self = \"10.0.0.1\"":                                          "cluster.self",
		"imap_port = 0":                                                "cluster.imap_port",
		"lmtp_port = 70000":                                            "cluster.lmtp_port",
		"connect_timeout = \"0s\"":                                     "cluster.connect_timeout",
	} {
		_, err := Parse("t.toml", []byte(base+src))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want a problem with %s", src, err, want)
		}
	}
}
