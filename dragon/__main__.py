from dragon.cli import main

main()
