package main

import "github.com/emersion/go-smtp"

// The replies smtpd gives, in one place: code, enhanced status code (RFC
// 3463) and client-safe text. Detail goes to the log, never to the client.
var (
	replyAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0},
		Message: "Authentication required"}
	// RFC 4954 4: 538 5.7.11 when the mechanism needs an encrypted channel.
	replyEncryptionRequired = &smtp.SMTPError{Code: 538, EnhancedCode: smtp.EnhancedCode{5, 7, 11},
		Message: "Encryption required: use STARTTLS first"}
	replyAuthNotOffered = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1},
		Message: "AUTH is not offered on this port; use submission"}
	replyBadSender = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 7},
		Message: "Malformed sender address"}
	replySenderNotOwned = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: "Sender address not owned by the authenticated user"}
	replyBadRecipient = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3},
		Message: "Malformed recipient address"}
	replyUnknownUser = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
		Message: "No such user here"}
	replyRelayDenied = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: "Relay access denied"}
	replyLocalError = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Local error, try again later"}
	// RFC 5321 6.3: a message with too many Received headers is a loop.
	replyLoop = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 4, 6},
		Message: "Too many hops: mail loop detected"}
	replyHeaderTooBig = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
		Message: "Message header too large"}
)
