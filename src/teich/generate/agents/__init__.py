"""Agent providers: the real coding-agent CLIs (Codex, Pi), run in a sandbox, their native session
files kept as the source of truth."""
