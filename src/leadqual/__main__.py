from leadqual.cli import main

main()
