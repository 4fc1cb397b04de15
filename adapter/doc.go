// Package adapter is the HTTP surface of bonychat-adapter: configuration,
// routes, bearer authentication, POST /message, the provider webhook
// endpoints, health, the BonyChat webhook client and the demo stand-in.
package adapter
