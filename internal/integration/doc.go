// Package integration holds tidepool's integration tests against a real
// redis-server (started per test by internal/redistest): connections killed
// by the server, a server restart under load, and dials refused by
// --maxclients. The package has no non-test code beyond this comment; its
// tests run pools of *resp.Conn whose Check is PING.
//
// The tests run in real time (a real server cannot run in a synctest
// bubble), with short intervals, and poll with deadlines instead of sleeping.
// Run them with:
//
//	go test -race ./internal/integration/
//
// They skip without redis-server in PATH, and fail instead when CI is set.
package integration
