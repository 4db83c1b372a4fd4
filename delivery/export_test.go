package delivery

import "time"

// SetClock makes l read the time from now, for tests of its retry waits.
func SetClock(l *Live, now func() time.Time) { l.now = now }
