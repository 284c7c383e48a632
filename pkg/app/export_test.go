package app

// BuildAuth builds the api role's auth service (tests of what it writes to the data dir).
func (a *App) BuildAuth() error { return a.buildAuth() }
