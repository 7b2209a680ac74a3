from dmctl.cli.main import entry

entry()
