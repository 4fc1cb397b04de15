// Package mailgun is the e-mail provider: it sends a channel's messages
// through Mailgun, receives replies from a Mailgun route (forward() in its
// parsed or raw-MIME form, or a store() notification) and delivery receipts
// from Mailgun's event webhooks, and keeps e-mail threads together.
//
// Files: provider.go and config.go; contactid.go (e-mail address ↔
// BonyChat custom ID); send.go, client.go, errors.go, html.go and
// quickreply.go (sending); reconcile.go (ambiguous sends); signature.go
// and tokens.go (webhook signatures, replayed tokens); handlers.go (the two
// webhook routes); inbound.go, rawmime.go and stored.go (a route's post
// into BonyChat events); events.go (receipts into statuses); thread.go
// (threading headers and per-contact thread records).
package mailgun
