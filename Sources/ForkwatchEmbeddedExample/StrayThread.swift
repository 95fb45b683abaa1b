#if canImport(Glibc)
import Glibc
#endif

/// A thread that sleeps forever, as a careless embedding program might leave in its master.
/// (Out of main.swift: a closure there would be main-actor isolated, and the runtime traps
/// when another thread runs it.)
func startStrayThread() {
    var thread = pthread_t()
    pthread_create(
        &thread, nil,
        { _ in
            while true { sleep(1000) }
        }, nil)
}
