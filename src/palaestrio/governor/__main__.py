from palaestrio.governor.process import main

main()
