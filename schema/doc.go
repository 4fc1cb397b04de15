// Package schema holds the BonyChat Custom Channel protocol: the message and
// webhook types, their validation (validator/v10 tags plus the protocol's own
// rules), and the functions that make produced events fit the limits without
// losing what a contact sent. It does no I/O.
package schema
