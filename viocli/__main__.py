from viocli.cli.main import main

main()
