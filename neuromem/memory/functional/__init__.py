"""Memory updates as pure functions; modules in `neuromem.memory` hold the state."""
