"""Audio into the daemon: sources (mic, file, stdin, sample), the microphone callback (mic) and the
lock-free ring buffer it writes (ring)."""
