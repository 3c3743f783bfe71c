"""The Majordomo Protocol (ZeroMQ RFC 7, MDP/0.1) on trio: broker, client and worker."""
