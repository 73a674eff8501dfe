package relay

import (
	"os"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// gcPercent is the process's garbage-collection target.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// The relay collects garbage at GCPercent, unless GOGC says otherwise.
func TestTheRelayCollectsGarbageAtItsOwnTargetUnlessGOGCIsSet(t *testing.T) {
	was := gcPercent()
	t.Setenv("GOGC", "")
	require.NoError(t, os.Unsetenv("GOGC"))
	restore := UseGCPercent()
	require.Equal(t, GCPercent, gcPercent())
	restore()
	require.Equal(t, was, gcPercent(), "set back")

	t.Setenv("GOGC", "150")
	debug.SetGCPercent(150) // as the runtime read it at start
	defer debug.SetGCPercent(was)
	restore = UseGCPercent()
	require.Equal(t, 150, gcPercent(), "GOGC wins")
	restore()
	require.Equal(t, 150, gcPercent())
}
