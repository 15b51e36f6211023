from shoal.demo.site import main

main()
