package main

import "github.com/emersion/go-smtp"

// REQUIRETLS (RFC 8689) is taken at MAIL only on a TLS session; what it
// asks of the delivery is common/courier's (requiretls.go there).

// replyRequireTLSNeedsTLS: RFC 8689 4.1, the parameter only on a TLS
// session; RFC 3463 X.7.10, encryption needed.
var replyRequireTLSNeedsTLS = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 10},
	Message: "REQUIRETLS needs a TLS session: use STARTTLS first"}
