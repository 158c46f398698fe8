from neuromem.cli import main

main()
