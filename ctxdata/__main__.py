from ctxdata.cli.main import main

main()
