"""Running npustream as a service: sd_notify readiness and watchdog, systemd unit install, doctor."""
