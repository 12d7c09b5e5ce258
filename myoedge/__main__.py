from myoedge.cli import main

raise SystemExit(main())
