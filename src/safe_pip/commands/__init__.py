"""One module per ``safe-pip`` subcommand (see ``safe_pip._cli``)."""
