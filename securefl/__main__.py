from securefl.cli.main import main

raise SystemExit(main())
