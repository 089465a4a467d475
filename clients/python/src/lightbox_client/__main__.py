from lightbox_client.cli import main

raise SystemExit(main())
