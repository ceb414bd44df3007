package trace

import (
	"strings"
	"testing"
	"time"
)

func TestReceived(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	got := Received(Hop{Helo: "evil\r\nX-Injected: (yes); no", IP: "192.0.2.1", By: "mx.example.test",
		Proto: "ESMTPS", ID: "q1", For: "demo@example.test"}, now)
	want := "Received: from evil__X-Injected: _yes__ no ([192.0.2.1])\r\n\tby mx.example.test (tern) with ESMTPS id q1\r\n" +
		"\tfor <demo@example.test>;\r\n\tFri, 02 Jan 2026 03:04:05 +0000\r\n"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if got := Received(Hop{Helo: "h", IP: "::1", By: "b", Proto: "ESMTP", ID: "q2"}, now); strings.Contains(got, "for <") {
		t.Fatalf("several recipients named: %q", got)
	}
}

func TestLocalReceived(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	got := LocalReceived("mx.example.test", 1000, "jo", "q3", "", now)
	want := "Received: by mx.example.test (tern, from userid 1000 jo)\r\n\tid q3;\r\n\tFri, 02 Jan 2026 03:04:05 +0000\r\n"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestDeliveryAndText(t *testing.T) {
	if got := Delivery("a@b.test", "demo@example.test"); got != "Return-Path: <a@b.test>\r\nDelivered-To: demo@example.test\r\n" {
		t.Fatalf("Delivery: %q", got)
	}
	if got := OneLine("a\r\nb\tc"); got != "a  b\tc" {
		t.Fatalf("OneLine: %q", got)
	}
	if got := Printable("a\r\nb\tc\x7f"); got != "a  b c " {
		t.Fatalf("Printable: %q", got)
	}
	if got := Reply(strings.Repeat("x", 300) + "\n"); len(got) != 200 || strings.ContainsAny(got, "\r\n") {
		t.Fatalf("Reply: %d bytes %q", len(got), got)
	}
}
