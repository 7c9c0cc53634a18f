/* linkcheck.c -- an empty program. src/CMakeLists.txt links each module into it whole, with
 * only the libraries the module declares, so the link fails if the module uses another. */
int main(void)
{
    return 0;
}
