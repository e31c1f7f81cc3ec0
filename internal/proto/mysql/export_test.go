package mysql

// ServeNativePassword lets the external tests log in to the application
// as a client would, without exporting the token computation.
var ServeNativePassword = serveNativePassword
