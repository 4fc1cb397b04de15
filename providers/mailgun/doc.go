// Package mailgun is the e-mail provider: it sends a channel's messages
// through Mailgun, receives replies from a Mailgun route's forward() and
// delivery receipts from Mailgun's event webhooks, and keeps e-mail threads
// together.
//
// In progress: so far it holds the contact-ID codec (e-mail address ↔
// BonyChat custom ID, contactid.go), webhook signature verification
// (signature.go), the channel's configuration (config.go) and sending
// (send.go, client.go, errors.go, html.go) without threading headers or
// reconciliation of ambiguous sends; routes and events follow.
package mailgun
