from npustream.cli import main

raise SystemExit(main())
