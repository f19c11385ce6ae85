/* capctl: the admin command line of CertAutoPilot discovery (see docs/capctl.md). */
#include "common/ossl.h"
#include "ctl/ctl.h"

int main(int argc, char **argv)
{
    (void)cap_ossl_init();
    return cap_ctl_main(argc, argv);
}
