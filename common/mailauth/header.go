package mailauth

import (
	"fmt"
	"strings"

	"github.com/emersion/go-msgauth/authres"
)

// Field is the Authentication-Results header field of r (RFC 8601 2.2),
// CRLF included, one result per folded line.
func (r Result) Field(authservID string) string {
	var parts []string
	one := func(res authres.Result, comment string) {
		s := strings.TrimPrefix(authres.Format("x", []authres.Result{res}), "x; ")
		if comment != "" {
			// The comment goes after the result value, before the
			// properties (RFC 8601 2.2 allows CFWS there).
			method, rest, _ := strings.Cut(s, " ")
			s = method + " (" + comment + ")"
			if strings.TrimSpace(rest) != "" {
				s += " " + rest
			}
		}
		parts = append(parts, strings.TrimSpace(s))
	}

	spfParams := map[string]string{}
	if r.SPF.Helo {
		spfParams["smtp.helo"] = r.SPF.Domain
	} else {
		spfParams["smtp.mailfrom"] = r.SPF.Domain
	}
	one(&authres.GenericResult{Method: "spf", Value: authres.ResultValue(r.SPF.Result), Params: spfParams}, "")

	if len(r.DKIM) == 0 {
		one(&authres.GenericResult{Method: "dkim", Value: authres.ResultNone}, "")
	}
	for _, d := range r.DKIM {
		p := map[string]string{"header.d": d.Domain, "header.s": d.Selector, "header.b": d.B, "reason": d.Reason}
		if d.Identifier != "" && d.Identifier != "@"+d.Domain {
			p["header.i"] = d.Identifier
		}
		one(&authres.GenericResult{Method: "dkim", Value: authres.ResultValue(d.Result), Params: p}, "")
	}

	comment := ""
	if r.DMARC.Policy != "" {
		comment = fmt.Sprintf("p=%s dis=%s", r.DMARC.Policy, orNone(string(r.DMARC.Disposition)))
	}
	dp := map[string]string{"header.from": r.DMARC.FromDomain}
	if r.DMARC.Result != "pass" {
		dp["reason"] = r.DMARC.Reason
	}
	one(&authres.GenericResult{Method: "dmarc", Value: authres.ResultValue(r.DMARC.Result), Params: dp}, comment)

	return "Authentication-Results: " + authservID + ";\r\n\t" + strings.Join(parts, ";\r\n\t") + "\r\n"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// AuthservID reads the authserv-id at the start of an
// Authentication-Results field value (RFC 8601 2.2), skipping comments
// and white space, so that copies claiming to come from this server can
// be removed (RFC 8601 5). It returns "" when there is none.
func AuthservID(value string) string {
	i, depth := 0, 0
	for i < len(value) {
		c := value[i]
		switch {
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case c == '\\' && depth > 0:
			i++ // a quoted pair inside a comment
		case depth == 0 && (c == ' ' || c == '\t' || c == '\r' || c == '\n'):
		case depth == 0:
			j := i
			for j < len(value) && !strings.ContainsRune(" \t\r\n;()", rune(value[j])) {
				j++
			}
			id := value[i:j]
			// A quoted authserv-id (RFC 8601 2.2 allows value =
			// quoted-string).
			return strings.ToLower(strings.Trim(id, `"`))
		}
		i++
	}
	return ""
}
