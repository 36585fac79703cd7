from symdpo.cli import main

main()
