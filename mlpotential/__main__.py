from mlpotential.cli import main

raise SystemExit(main())
