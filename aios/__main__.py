from aios.cli import main

main()
