/* A shared object in the plugin directory that is not an hpn plugin. */
int not_an_hpn_plugin(void);
int not_an_hpn_plugin(void) { return 42; }
